"""Simulated building devices served over real Modbus TCP and MQTT."""
