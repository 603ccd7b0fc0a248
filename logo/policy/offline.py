"""What logo's offline policy learners share: units from the data module, dims checks, split logging.

A learner trained by ``logo fit`` on an :class:`~logo.data.OfflineMARLDataModule` receives
batches with the keys of :func:`~logo.data.reader.gather_transitions` plus ``weights [B]`` and
``synthetic [B]`` (bool: the row came from world-model rollouts). Observation, state and action
units are copied from the data module's statistics at ``setup`` into buffers
(:class:`logo.nn.DataUnits`), so checkpoints act on raw environment inputs.

Learners also implement ``rollout_act(obs, avail_actions=None, state=None, generator=None)``:
the (exploring) policy the data module rolls out in the world model. The default is ``act``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from lightning.pytorch import LightningModule

from logo.dims import ACTING_DIMS
from logo.errors import LogoError
from logo.loggers import logs_this_step
from logo.nn import DataUnits
from logo.policy.checkpoint import ActingPolicy
from logo.policy.losses import weighted_mean

POLICY_DIMS = (*ACTING_DIMS, "state_dim")  # what a learner with a centralised critic or mixer depends on


class OfflinePolicy(ActingPolicy, DataUnits, LightningModule):
    """Base class of logo's offline learners (not used on its own).

    Units (``obs_norm``, ``state_norm``, action bounds), ``setup`` and ``scale_actions`` /
    ``unscale_actions`` come from :class:`logo.nn.DataUnits`; the dims checked against the data
    module are ``checked_dims``.

    Args:
        n_agents: number of agents (linked from the data module).
        obs_dim: per-agent observation size (linked).
        state_dim: global state size (linked).
        action_kind: discrete or continuous actions (linked).
        action_size: number of discrete actions or continuous action dimension (linked).
    """

    checked_dims: ClassVar[tuple[str, ...]] = POLICY_DIMS

    def __init__(self, n_agents: int, obs_dim: int, state_dim: int,
                 action_kind: Literal["discrete", "continuous"], action_size: int):
        super().__init__(n_agents, obs_dim, state_dim, action_kind, action_size)

    def require(self, kind: Literal["discrete", "continuous"]) -> None:
        """Raise a clear error when the linked action kind is not the one this learner handles."""
        if ("discrete" if self.discrete else "continuous") != kind:
            other = "ContinuousMACQL" if kind == "discrete" else "DiscreteMACQL"
            raise LogoError(f"{type(self).__name__} needs {kind} actions; this dataset's actions are "
                            f"{'discrete' if self.discrete else 'continuous'} (use {other})")

    def rollout_act(self, obs: torch.Tensor, avail_actions: torch.Tensor | None = None,
                    state: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions used in world-model rollouts; by default the greedy ``act``."""
        return self.act(obs, avail_actions=avail_actions, state=state)

    @staticmethod
    def conservative_term(penalty: torch.Tensor, q_data: torch.Tensor, batch: dict[str, Any],
                          synthetic_mode: Literal["push_down", "balanced", "skip", "full"],
                          synthetic_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-row CQL values [B] and their weights, with synthetic rows treated by ``synthetic_mode``.

        ``penalty`` is CQL's ``push-down - Q(s, a_data)`` per row and ``q_data`` the (attached) Q of the
        row's action. On a synthetic row that action is the policy's own rollout action, so pushing it
        up would work against conservatism. ``push_down`` (COMBO-style, Yu et al. 2021) keeps only
        the push-down part there (``penalty + q_data``); ``skip`` gives synthetic rows no CQL term;
        ``full`` applies the real rows' term unchanged.

        ``push_down`` alone pushes the whole Q level down: a row's push-down part gains exactly 1 per unit
        of a constant shift of Q, and on real rows the ``- Q(s, a_data)`` part cancels it, but nothing
        cancels it on synthetic rows. ``balanced`` is COMBO's form, push-down on model rows and push-up on
        real rows in equal (weighted) mass: real rows also subtract ``W_synthetic / W_real * q_data``, so a
        constant shift of Q no longer changes the term.

        ``synthetic_weight`` scales the synthetic rows' weight in the term's weighted mean (the term is a mean over
        the rows that carry it, so 0 is ``skip`` and 1 the mode as described; ``balanced`` matches the push-up to
        the scaled mass): with ``push_down``, the strength of COMBO's push-down on model rows, and with it the
        level shift above, separately from ``cql_alpha`` on real rows.

        No step waits for the device here: there is no branch on the data (a ``bool(synthetic.any())`` shortcut for
        real-only batches cost a host sync per update on a GPU) and no boolean-mask indexing. On a batch without
        synthetic rows every mode gives the real rows' term, bit for bit: ``torch.where`` keeps ``penalty``, the
        ``skip`` weights are the batch's times 1 and the ``balanced`` ratio is 0.
        """
        weights, synthetic = batch.get("weights"), batch.get("synthetic")
        if synthetic is not None and synthetic_weight != 1.0 and synthetic_mode != "skip":
            scale = torch.where(synthetic, synthetic_weight, 1.0).to(penalty.dtype)
            weights = scale if weights is None else weights * scale
        if synthetic is None or synthetic_mode == "full":
            return penalty, weights
        if synthetic_mode == "skip":
            real = (~synthetic).to(penalty.dtype)
            return penalty, real if weights is None else weights * real
        pushed_down = torch.where(synthetic, penalty + q_data, penalty)
        if synthetic_mode == "push_down":
            return pushed_down, weights
        mass = torch.ones_like(penalty) if weights is None else weights
        w_synthetic = torch.where(synthetic, mass, 0.0).sum()
        ratio = w_synthetic / torch.where(synthetic, 0.0, mass).sum().clamp_min(1e-8)  # W_synthetic / W_real
        return torch.where(synthetic, pushed_down, pushed_down - ratio * q_data), weights

    def conservative_td_loss(self, parts: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        """``td + cql_alpha * cql`` from a learner's per-row ``td``, ``cql`` (the CQL penalty), ``q_data`` and
        ``q_data_attached`` [B], synthetic rows' CQL set by ``cql_synthetic``; logs each part (:meth:`log_split`),
        and with the data module's ``return_gamma`` also ``train/rtg_real``: ``reward_scale`` times the real rows'
        mean discounted return-to-go, in the units of ``train/q_data`` (``_real``), to see over- or under-estimation.
        With synthetic rows in the batch, ``train/td_synthetic_share`` is their share of the (weighted) TD loss."""
        td = self.log_split("td", parts["td"], batch)
        synthetic = batch.get("synthetic")
        if synthetic is not None and logs_this_step(self):  # the synthetic rows' share of the TD loss (it is >= 0)
            mass = parts["td"].detach() * (batch["weights"] if batch.get("weights") is not None else 1.0)
            self.log("train/td_synthetic_share", mass[synthetic].sum() / mass.sum().clamp_min(1e-12))
        values, weights = self.conservative_term(parts["cql"], parts["q_data_attached"], batch,
                                                 self.hparams.cql_synthetic, self.hparams.cql_synthetic_weight)
        cql = self.log_split("cql", values, batch, weights)
        self.log_split("q_data", parts["q_data"], batch)
        if "td_bias" in parts:  # signed q_data - TD target: > 0 on real rows is the data action held above its target
            self.log_split("td_bias", parts["td_bias"], batch)
        if "returns_to_go" in batch and logs_this_step(self):  # data module's return_gamma: Q's yardstick
            real = ~batch["synthetic"] if "synthetic" in batch else slice(None)
            self.log("train/rtg_real", self.hparams.reward_scale * batch["returns_to_go"][real].mean())
        return td + self.hparams.cql_alpha * cql

    def log_split(self, name: str, values: torch.Tensor, batch: dict[str, Any], weights: torch.Tensor | None = None,
                  **kwargs: Any) -> torch.Tensor:
        """Log the weighted mean of per-transition ``values`` [B] as ``train/{name}``, and its mean over the
        real and the synthetic rows as ``train/{name}_real`` / ``train/{name}_synthetic`` (when present).
        ``weights`` default to the batch's. Returns the weighted mean (logging only on steps the loggers
        receive, :func:`logs_this_step`)."""
        weights = batch.get("weights") if weights is None else weights
        mean = weighted_mean(values, weights)
        if not logs_this_step(self):
            return mean
        self.log(f"train/{name}", mean, **kwargs)
        synthetic = batch.get("synthetic")
        if synthetic is not None and bool(synthetic.any()):
            values = values.detach()
            self.log(f"train/{name}_real", values[~synthetic].mean() if bool((~synthetic).any()) else 0.0)
            self.log(f"train/{name}_synthetic", values[synthetic].mean())
            self.log("train/synthetic_share", synthetic.float().mean())
        return mean
