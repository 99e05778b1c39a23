"""Metrics, health and readiness endpoints of the lbipam processes (controller and speaker).

Kept free of imports: `lbipam.cli` imports `lbipam.observe.flags` for `--help`, which must stay fast.
"""
