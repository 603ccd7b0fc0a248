"""Reference returns of random and expert behaviour, for normalised scores.

Measured with ``benchmarks/reference_returns.py`` (see docs/environments.md for the command and the
full table with medium returns and throughput). Keys are ``family/scenario``, plus the non-default
env options as JSON where a variant differs (e.g. continuous MPE actions). A dataset made by
``logo collect`` stores the entry it was made under in its ``reference_returns`` attribute.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from logo.errors import LogoError

# family/scenario[options] -> {"random": mean return, "expert": mean return}
REFERENCE_RETURNS: dict[str, dict[str, float]] = {
    "mpe/simple_spread_v3": {"random": -79.151, "expert": -20.385},
    "smax/3m": {"random": 0.18, "expert": 1.899},
    "smax/5m_vs_6m": {"random": 0.139, "expert": 0.793},
    "mamujoco/HalfCheetah-2x3": {"random": -286.602, "expert": 5491.615},
}

# The learned tiers' references (``logo tiers``, docs/environments.md "Learned tiers measured"): random = the mean
# of 1,000 episodes of uniform legal actions (``references.json``), expert = the expert tier's mean return. Every
# learned dataset already carries these in its ``reference_returns`` attribute; they are listed here so that data of
# another source on the same map can be scored against the same learned expert.
LEARNED_REFERENCE_RETURNS: dict[str, dict[str, float]] = {
    "smax/3m": {"random": 0.180, "expert": 1.735},
    "smax/2s3z": {"random": 0.206, "expert": 1.985},
    "smax/5m_vs_6m": {"random": 0.136, "expert": 0.686},
    "smax/3s_vs_5z": {"random": 0.216, "expert": 1.649},
    "smax/6h_vs_8z": {"random": 0.320, "expert": 1.991},
}


def reference_key(family: str, scenario: str, env_options: dict[str, Any] | None = None) -> str:
    """``mpe/simple_spread_v3`` or ``mpe/simple_spread_v3{"continuous_actions": true}``."""
    key = f"{family}/{scenario}"
    if env_options:
        key += json.dumps(env_options, sort_keys=True)
    return key


def reference_returns(family: str, scenario: str, env_options: dict[str, Any] | None = None,
                      expert: Literal["scripted", "learned"] = "scripted") -> dict[str, float] | None:
    """The built-in random/expert returns of a scenario variant, or None where none were measured.

    ``expert``: ``scripted`` (the scripted or TD3 expert of ``logo collect``) or ``learned`` (the expert tier of
    ``logo tiers``).
    """
    if expert not in ("scripted", "learned"):
        raise LogoError(f"expert: expected 'scripted' or 'learned', got {expert!r}")
    table = REFERENCE_RETURNS if expert == "scripted" else LEARNED_REFERENCE_RETURNS
    return table.get(reference_key(family, scenario, env_options))
