"""Partitions are per program: see `defs.context.ProgramContext.arrival_days` and `.rounds`."""

from feature_platform.defs.context import ProgramContext

__all__ = ["ProgramContext"]
