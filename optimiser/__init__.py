"""Load-shifting optimiser: plain data in, plain data out (Pyomo + HiGHS)."""
