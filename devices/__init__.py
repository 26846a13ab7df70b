"""Device profiles (register maps), codecs, drivers and transports, and the clock."""
