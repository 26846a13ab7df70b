"""Replay: scenarios run through the real agent on the virtual clock, and their outputs."""
