"""Dagster wiring: assets, checks, sensors, schedules, jobs and resources. Thin: every step
calls into the plain-Python core."""
