"""Device kinds as plugins."""
