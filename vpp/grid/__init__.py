"""The grid operator's wire contract: validated messages, event ledger, targets, client.

Transport-free: nothing here opens a socket except `vpp.grid.client` (the operator-side
helper behind `vpp event send`). See docs/grid-messages.md.
"""
