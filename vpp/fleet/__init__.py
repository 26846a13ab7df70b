"""The district aggregator (`vpp aggregate FLEET.yaml`): a fleet of site agents sold upward as
one resource under the same grid contract as a site (docs/fleet.md)."""
