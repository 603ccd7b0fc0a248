"""LOGO: the local-to-global world model (arXiv 2601.07463).

Predictive (local) model, one network shared by all agents plus a one-hot agent id::

    z_i   = E_p(o_i, s, a)              latent of agent i              [B, N, latent_dim]
    o_i'  ~ N(D_p(z_i))                 Gaussian next local observation (NLL loss)
    o_i  ~= R_p(z_i)                    reconstruction (autoencoder term)

Deductive (global) model, over all agents' next local observations::

    h     = E_d(o_1'..o_N', dO, s)     global latent                  [B, latent_dim]
    (s', r) ~ N(D_d(h)), done, legal'   next state, team reward, termination, next legal actions
    o'   ~= R_d(h)                      reconstruction

Coupling: the predictive model's mean next observations are fed through the deductive model
(``h_hat = E_d(o_hat', s)``) and its heads are trained on them too, plus a latent term pulling
``h_hat`` to the latent of the true observations, so the deductive path works on what the
predictive path actually produces. At prediction time the deductive model only ever sees
predicted local observations.

Uncertainty without an ensemble: an auxiliary head reads the predictive latents (z_1..z_N, s)
and predicts s' directly; ``u = || s'_aux - s'_deduced ||_2`` in standardised state units.
The two estimates agree where the data teaches both and drift apart off the data.

Choices where the paper is silent (all documented in docs/world_model.md):

* ``action_input="joint"`` (default): each agent's encoder sees the joint action, because o_i'
  also depends on teammates' actions (their movement and attacks change what agent i sees);
  with ``"local"`` it sees only a_i, as the paper's text says, and must average over the
  behaviour policy's teammates -- which breaks when the rollout policy differs from it.
* ``deduce_from_state=True``: the deductive encoder also sees the current state s, since the
  state may hold features no agent observes (units outside every sight range).
* ``deduce_from_change=True``: it also sees the standardised local changes dO = o' - o. The
  next state is s plus a small change; deducing that change from absolute o' and s means
  subtracting two large, nearly equal inputs, which an MLP learns slowly (on the synthetic
  task the deduced positions stayed at chance after 1500 updates while the auxiliary head,
  whose input had seen the actions, learned them in 400). With dO the change is an input.
* the auxiliary head reads detached latents (``detach_aux``), so it probes the predictive
  model without changing it.
* ``aux_reward`` (an extension, off by default): the auxiliary head also predicts the reward, and u
  adds the two reward estimates' disagreement, ``u = sqrt(||ds||^2 + aux_reward * dr^2)`` in
  standardised units. The paper's u sees only s', so it cannot down-weight rows whose reward is
  wrong (on MPE spread the reward is the hardest target: held-out R^2 about 0.5).
* ``reward_weight`` (an extension, 1 by default): the deductive NLL averages over the S + 1 features of
  (s', r), so the reward is 1/(S + 1) of its signal (1/55 on MPE spread) and the shared decoder is shaped
  by the state. ``reward_weight`` counts the reward's term that many times one state feature's, in the
  deductive and the coupled pass alike; ``state_dim`` gives it as much weight as the whole state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

from logo.dims import Batch
from logo.nn import MLP, AgentSharedMLP, LogStdBounds
from logo.world_model.base import Prediction, WorldModel
from logo.world_model.losses import gaussian_nll, legal_action_loss, masked_mse, termination_loss

BOUNDS_PENALTY = 0.01


class LogoWorldModel(WorldModel):
    """The LOGO world model (see the module docstring for its parts and the choices made).

    Args:
        hidden_sizes: hidden widths of every encoder/decoder MLP.
        latent_dim: size of the predictive (per agent) and deductive (global) latents.
        action_input: condition agent i's predictive model on the joint action or on a_i only.
        deduce_from_state: give the deductive encoder the current state s as well.
        deduce_from_change: give the deductive encoder the local changes o' - o as well.
        detach_aux: train the auxiliary state head on detached predictive latents.
        reconstruction_weight: weight of both autoencoder reconstruction terms.
        coupling_weight: weight of the deductive losses on predicted local observations.
        latent_weight: weight of the latent agreement term ||E_d(o_hat') - sg(E_d(o'))||^2 / Var(sg(E_d(o'))).
        aux_weight: weight of the auxiliary state head's squared error.
        termination_weight: weight of the termination cross-entropy.
        legal_weight: weight of the next-legal-actions cross-entropy (discrete actions).
        aux_reward: weight of the reward in u; > 0 also trains the auxiliary head on the reward and adds
            ``aux_reward * (r_aux - r_deduced)^2`` (standardised) to u's square. 0: the paper's u, next state only.
        reward_weight: weight of the reward's term in the deductive Gaussian NLL, relative to one next-state
            feature's (1: the reward is one of state_dim + 1 equally weighted features, as before).
        **kwargs: dims and training options of :class:`~logo.world_model.base.WorldModel`.

    Example:
        >>> model = LogoWorldModel(n_agents=3, obs_dim=18, state_dim=54, action_kind="discrete", action_size=5)
        >>> out = model.step(torch.zeros(4, 3, 18), torch.zeros(4, 54), torch.zeros(4, 3, dtype=torch.long))
        >>> out.next_obs.shape, out.uncertainty.shape
        (torch.Size([4, 3, 18]), torch.Size([4]))
    """

    def __init__(self, hidden_sizes: Sequence[int] = (256, 256), latent_dim: int = 128,
                 action_input: Literal["joint", "local"] = "joint", deduce_from_state: bool = True,
                 deduce_from_change: bool = True,
                 detach_aux: bool = True, reconstruction_weight: float = 0.1, coupling_weight: float = 1.0,
                 latent_weight: float = 0.1, aux_weight: float = 1.0, termination_weight: float = 1.0,
                 legal_weight: float = 1.0, aux_reward: float = 0.0, reward_weight: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        n, o, s, a = self.n_agents, self.obs_dim, self.state_dim, self.action_size
        hidden = list(hidden_sizes)
        action_in = n * a if action_input == "joint" else a
        self.pred_encoder = AgentSharedMLP(n, o + s + action_in, latent_dim, hidden)
        self.pred_decoder = AgentSharedMLP(n, latent_dim, 2 * o, hidden)
        self.pred_bounds = LogStdBounds(o)
        self.pred_reconstruct = AgentSharedMLP(n, latent_dim, o, hidden[:1])
        ded_in = n * o * (2 if deduce_from_change else 1) + (s if deduce_from_state else 0)
        self.ded_encoder = MLP(ded_in, hidden, latent_dim)
        self.n_legal = n * a if self.discrete else 0
        self.ded_decoder = MLP(latent_dim, hidden, 2 * (s + 1) + 1 + self.n_legal)
        self.ded_bounds = LogStdBounds(s + 1)
        self.ded_reconstruct = MLP(latent_dim, hidden[:1], n * o)
        if aux_reward < 0:
            raise ValueError(f"aux_reward: expected a weight >= 0, got {aux_reward}")
        if reward_weight < 0:
            raise ValueError(f"reward_weight: expected a weight >= 0, got {reward_weight}")
        self.aux_state = MLP(n * latent_dim + s, hidden, s + (1 if aux_reward > 0 else 0))

    # ------------------------------------------------------------------ the two models
    def predictive(self, inputs: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> latents z [B, N, L], mean and log-std of the next-observation output [B, N, O]."""
        obs, state, actions = inputs["obs"], inputs["state"], inputs["actions"]
        b, n = obs.shape[:2]
        if self.hparams.action_input == "joint":
            actions = actions.reshape(b, 1, -1).expand(b, n, -1)  # [B, N, N*A]
        z = self.pred_encoder(torch.cat([obs, state.unsqueeze(1).expand(b, n, -1), actions], -1))
        mean, raw = self.pred_decoder(z).chunk(2, dim=-1)
        return z, mean, self.pred_bounds(raw)

    def deductive(self, next_obs: torch.Tensor, inputs: Batch) -> tuple[torch.Tensor, Batch]:
        """Standardised next local observations [B, N, O] (+ their change, + state) -> latent h [B, L] and heads."""
        parts = [next_obs.flatten(1)]
        if self.hparams.deduce_from_change:
            parts.append(self.obs_change(inputs["obs"], next_obs).flatten(1))
        if self.hparams.deduce_from_state:
            parts.append(inputs["state"])
        x = torch.cat(parts, -1)
        h = self.ded_encoder(x)
        return h, self.deductive_heads(h)

    def deductive_heads(self, h: torch.Tensor) -> Batch:
        s = self.state_dim
        out = self.ded_decoder(h)
        mean, raw = out[:, :s + 1], out[:, s + 1:2 * (s + 1)]
        heads = {"mean": mean, "log_std": self.ded_bounds(raw), "done_logit": out[:, 2 * (s + 1)]}
        if self.discrete:
            heads["legal_logit"] = out[:, 2 * (s + 1) + 1:].reshape(-1, self.n_agents, self.action_size)
        return heads

    def auxiliary(self, z: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """Predictive latents [B, N, L] and state -> the auxiliary next-state output (delta units) [B, S]
        (then the standardised reward, [B, S + 1], with ``aux_reward``)."""
        if self.hparams.detach_aux:
            z = z.detach()
        return self.aux_state(torch.cat([z.flatten(1), state], -1))

    # ------------------------------------------------------------------ losses and prediction
    def _deductive_loss(self, heads: Batch, targets: Batch) -> Batch:
        target = torch.cat([targets["state_delta"], targets["rewards"].unsqueeze(-1)], -1)
        beta, s = self.hparams.nll_beta, self.state_dim
        nll = gaussian_nll(heads["mean"], heads["log_std"], target, beta=beta)  # mean over [B, S + 1]
        if self.hparams.reward_weight != 1.0:  # the reward's term counts reward_weight times, still / (S + 1)
            reward_nll = gaussian_nll(heads["mean"][:, s], heads["log_std"][:, s], target[:, s], beta=beta)
            nll = nll + (self.hparams.reward_weight - 1.0) * reward_nll / (s + 1)
        parts = {"nll": nll, "termination": termination_loss(heads["done_logit"], targets["terminals"])}
        if self.discrete:
            parts["legal"] = legal_action_loss(heads["legal_logit"], targets["next_avail"])
        return parts

    def _weighted(self, parts: Batch) -> torch.Tensor:
        hp = self.hparams
        return (parts["nll"] + hp.termination_weight * parts["termination"]
                + hp.legal_weight * parts.get("legal", torch.zeros(())).to(parts["nll"]))

    def loss_parts(self, inputs: Batch, targets: Batch) -> Batch:
        hp = self.hparams
        mask = self.obs_mask
        z, mean, log_std = self.predictive(inputs)
        predictive_nll = gaussian_nll(mean, log_std, targets["obs_delta"], mask, self.hparams.nll_beta)
        predicted_obs, _ = self.next_obs_from(inputs["obs"], mean)
        # one deductive pass over true and predicted next observations stacked along the batch
        b = len(predicted_obs)
        twice = {k: torch.cat([inputs[k], inputs[k]]) for k in ("obs", "state")}
        h_both, heads_both = self.deductive(torch.cat([targets["next_obs"], predicted_obs]), twice)
        h_true, h_hat = h_both[:b], h_both[b:]
        heads_true = {k: v[:b] for k, v in heads_both.items()}
        heads_hat = {k: v[b:] for k, v in heads_both.items()}
        deductive = self._deductive_loss(heads_true, targets)
        coupled = self._deductive_loss(heads_hat, targets)
        target = h_true.detach()  # relative to the latents' spread, so shrinking them cannot lower it
        latent = masked_mse(h_hat, target) / target.var(0).mean().clamp(min=1e-6)
        aux_target = targets["state_delta"]
        if hp.aux_reward > 0:
            aux_target = torch.cat([aux_target, targets["rewards"].unsqueeze(-1)], -1)
        aux = masked_mse(self.auxiliary(z, inputs["state"]), aux_target)
        bounds = self.pred_bounds.penalty() + self.ded_bounds.penalty()
        loss = predictive_nll + self._weighted(deductive) + hp.coupling_weight * self._weighted(coupled)
        parts = {}
        if hp.reconstruction_weight:  # the autoencoder terms; with weight 0 their heads are not run (nor logged)
            parts["predictive_recon"] = masked_mse(self.pred_reconstruct(z), inputs["obs"], mask)
            parts["deductive_recon"] = masked_mse(self.ded_reconstruct(h_true), targets["next_obs"].flatten(1),
                                                  mask.flatten().expand(b, -1))
            loss = loss + hp.reconstruction_weight * (parts["predictive_recon"] + parts["deductive_recon"])
        loss = loss + hp.latent_weight * latent + hp.aux_weight * aux + BOUNDS_PENALTY * bounds
        parts = {"loss": loss, "predictive_nll": predictive_nll, **parts, "deductive_nll": deductive["nll"],
                 "termination": deductive["termination"], "coupling": self._weighted(coupled),
                 "latent": latent, "aux_state": aux}
        if self.discrete:
            parts["legal"] = deductive["legal"]
        return parts

    def predict(self, inputs: Batch, generator: torch.Generator | None = None) -> Prediction:
        s = self.state_dim
        z, mean, log_std = self.predictive(inputs)
        next_obs, next_obs_std = self.next_obs_from(inputs["obs"], mean, log_std.exp())
        _, heads = self.deductive(next_obs, inputs)
        std = heads["log_std"].exp()
        next_state, next_state_std = self.next_state_from(inputs["state"], heads["mean"][:, :s], std[:, :s])
        aux = self.auxiliary(z, inputs["state"])
        aux_state, _ = self.next_state_from(inputs["state"], aux[:, :s])
        u = (aux_state - next_state).norm(dim=-1)  # [B]
        if self.hparams.aux_reward > 0:  # (norm alone otherwise: the paper's u exactly as before the extension)
            u = (u.square() + self.hparams.aux_reward * (aux[:, s] - heads["mean"][:, s]).square()).sqrt()
        return Prediction(next_obs=next_obs, next_state=next_state, reward=heads["mean"][:, s],
                          done_logit=heads["done_logit"], avail_logit=heads.get("legal_logit"),
                          uncertainty=u,
                          next_obs_std=next_obs_std, next_state_std=next_state_std, reward_std=std[:, s])
