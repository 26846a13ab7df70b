"""VPP agent: the composition root (agent, grid interface, control, store, replay, CLI)."""
