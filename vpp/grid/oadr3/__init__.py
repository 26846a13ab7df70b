"""OpenADR 3.1 VEN (docs/openadr.md): a vpp.grid.link.GridLink that polls a VTN's programs
and events over REST with OAuth2 client credentials, turns them into native contract events
(vpp.grid.messages.Event data) and posts the reports the events' descriptors ask for.

Modules: `wire` (the VTN's objects as the VEN reads them, and the bodies it sends), `auth`
(the token), `client` (HTTP with one-line errors), `mapping` (event → native event),
`reports` (native report → OpenADR reports), `state` (what survives a restart), `link`.
"""
