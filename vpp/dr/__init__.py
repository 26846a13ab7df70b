"""Demand response in the agent: events, planning glue, baselines in use, reports."""
