"""Device capabilities, profiles (register maps), codecs, transports and the clock."""
