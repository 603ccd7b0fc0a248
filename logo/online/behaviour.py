"""A trained online learner acting as it acted while learning: the policy that plays the learned tiers."""

from __future__ import annotations

import numpy as np
import torch
from lightning.pytorch import LightningModule

from logo.dims import linked_dims
from logo.envs.base import EnvSpec, TimeStep
from logo.envs.policies import module_actions
from logo.errors import LogoError, check_fits


class SampledModulePolicy:
    """A logo ``Policy`` playing a learner's behaviour actions (``behave(obs, avail, state, generator)``).

    The behaviour tiers are recorded with the policy as it acted while learning: ``OnlineMAPPO`` samples its
    actions, ``OnlineTD3`` adds its Gaussian exploration noise to the actor's (not greedy, as ``logo evaluate``
    plays them). ``seed`` reseeds the draws, so the same seeds replay the same episodes.

    Example:
        >>> policy = SampledModulePolicy(load_policy("snapshots/final.ckpt"), env.spec, seed=0)  # doctest: +SKIP
        >>> actions = policy.act(env.reset([0, 1]))  # doctest: +SKIP
    """

    def __init__(self, module: LightningModule, spec: EnvSpec, seed: int = 0):
        if not callable(getattr(module, "behave", None)):
            raise LogoError(f"{type(module).__name__} has no behave(): the learned tiers are played by an online "
                            "learner's checkpoint (OnlineMAPPO, OnlineTD3)")
        check_fits(module.hparams, linked_dims(spec, ("n_agents", "obs_dim", "action_size")),
                   f"policy {type(module).__name__}", f"{spec.family}/{spec.scenario}", ("checkpoint", "environment"))
        self.module, self.spec = module, spec
        self.generator = torch.Generator(device=module.device)
        self.seed(seed)

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    def act(self, ts: TimeStep) -> np.ndarray:
        return module_actions(self.module, self.spec, ts,
                              lambda obs, avail, state: self.module.behave(obs, avail, state, self.generator))
