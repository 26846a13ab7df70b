"""Control: the dispatcher (fixed-phase cycle), flexibility adapters, planning glue."""
