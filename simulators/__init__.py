"""Simulated building devices served over real Modbus TCP and MQTT.

Modules: `models` (the registry: kind → its `sim:` parameters and model factory), one physics
module per kind (`battery`, `ev_charger`, `hvac`, `loads`), each registering itself, `faults`,
`registers` + `modbus_server` (Modbus TCP), `mqtt_server` (MQTT), and `site`
(`SimulatedSite`, `SimDeviceSpec`). The parameters and the weather are the building model
(`building.params`, `building.weather`): see docs/simulators.md.
"""
