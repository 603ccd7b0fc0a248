"""Policy LightningModules and their losses."""

from logo.policy.bc import BCPolicy

__all__ = ["BCPolicy"]
