"""Simulated building devices served over real Modbus TCP and MQTT.

Modules: `params` (physics parameters per kind, `PARAMS`), `environment` (weather and daily
shapes), one physics module per kind (`battery`, `ev_charger`, `hvac`, `loads`), `faults`,
`registers` + `modbus_server` (Modbus TCP), `mqtt_server` (MQTT), and `site`
(`SimulatedSite`, `SimDeviceSpec`): see docs/simulators.md.
"""
