"""The building model: each device kind's model parameters (a site file's `sim:` blocks),
base-load shapes and weather. Plain data and pure functions, read by the agent's forecasts
and by the simulators alike; a building on site has no simulator, but it has this model."""
