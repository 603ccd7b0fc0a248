"""Reference returns of random and expert behaviour, for normalised scores.

Measured with ``benchmarks/reference_returns.py`` (see docs/environments.md for the command and the
full table with medium returns and throughput). Keys are ``family/scenario``, plus the non-default
env options as JSON where a variant differs (e.g. continuous MPE actions). A dataset made by
``logo collect`` stores the entry it was made under in its ``reference_returns`` attribute.
"""

from __future__ import annotations

import json
from typing import Any

# family/scenario[options] -> {"random": mean return, "expert": mean return}
REFERENCE_RETURNS: dict[str, dict[str, float]] = {
    "mpe/simple_spread_v3": {"random": -79.151, "expert": -20.385},
    "smax/3m": {"random": 0.18, "expert": 1.899},
    "smax/5m_vs_6m": {"random": 0.139, "expert": 0.793},
    "mamujoco/HalfCheetah-2x3": {"random": -286.602, "expert": 5491.615},
}


def reference_key(family: str, scenario: str, env_options: dict[str, Any] | None = None) -> str:
    """``mpe/simple_spread_v3`` or ``mpe/simple_spread_v3{"continuous_actions": true}``."""
    key = f"{family}/{scenario}"
    if env_options:
        key += json.dumps(env_options, sort_keys=True)
    return key


def reference_returns(family: str, scenario: str, env_options: dict[str, Any] | None = None
                      ) -> dict[str, float] | None:
    """The built-in random/expert returns of a scenario variant, or None where none were measured."""
    return REFERENCE_RETURNS.get(reference_key(family, scenario, env_options))
