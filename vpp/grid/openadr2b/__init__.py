"""The OpenADR 2.0b VEN link (docs/openadr.md): simple HTTP pull, XML payloads.

`wire` builds the VEN's messages, `inbound` reads the VTN's, `mapping` turns 2.0b events
into the native contract's events and our answers into opt types, `telemetry` makes the
TELEMETRY_USAGE report's intervals, and `link` is the VEN (a vpp.grid.link.GridLink).
"""
