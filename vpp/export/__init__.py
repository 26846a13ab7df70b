"""`vpp export`: the store's telemetry, events and reports as CSV or Parquet tables."""
