"""Replay: scenarios (site, weather, prices, EVs, events, faults on a virtual clock) and the
outputs computed from a finished run's store (summary, table, plots)."""
