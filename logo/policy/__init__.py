"""Policy LightningModules and their losses."""

from logo.policy.bc import BCPolicy
from logo.policy.macql import DiscreteMACQL
from logo.policy.macql_continuous import ContinuousMACQL

__all__ = ["BCPolicy", "ContinuousMACQL", "DiscreteMACQL"]
