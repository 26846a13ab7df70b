"""OpenADR 3.1 VEN (docs/openadr.md): a vpp.grid.link.GridLink that polls a VTN's programs
and events over REST with OAuth2 client credentials, turns them into native contract events
(vpp.grid.messages.Event data) and posts the reports the events' descriptors ask for.

Modules: `wire` (the VTN's objects as the VEN reads them, and the bodies it sends), `read`
(answers into them), `auth` (the token), `client` (HTTP with one-line errors),
`registration` (VEN and resource), `tracker` (the VTN's events followed poll after poll),
`mapping` (event → native event), `outgoing` and `reports` (the agent's answers and reports
→ OpenADR reports), `notifier` (the VTN's MQTT notifier), `state` (what survives a restart),
`link` (the GridLink that runs them).
"""
