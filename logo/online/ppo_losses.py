"""The pieces of PPO as small pure functions: legal-action masking, sampling, GAE and the clipped losses.

GAE is TorchRL's ``generalized_advantage_estimate`` (imported lazily: TorchRL costs ~1.5 s to import, and
only a PPO fit needs it). It fits as it is: a pure function over tensors that tells a true termination
(no bootstrap) from a time-limit cut (bootstrap from the next state's value) at the step the episode ends,
which is the distinction logo's datasets keep. TorchRL's ``ClipPPOLoss`` does not fit: it wants the actor
and critic as TensorDict modules with its own keys, while here the actor is shared by the agents, masked by
each agent's legal actions, and the critic is centralised on the global state; the clipped objective
itself is a few lines, written below and checked by hand in ``tests/online/test_ppo.py``.
"""

from __future__ import annotations

import torch


def masked_logits(logits: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
    """Illegal actions get the lowest finite logit, so their probability is exactly 0 (logits [..., A])."""
    if avail is None:
        return logits
    return logits.masked_fill(~avail.bool(), torch.finfo(logits.dtype).min)


def log_probs(logits: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
    """Log-probabilities of every action under the masked softmax, [..., A]."""
    return torch.log_softmax(masked_logits(logits, avail), dim=-1)


def sample_actions(logits: torch.Tensor, avail: torch.Tensor | None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """One action per row from the masked softmax (Gumbel-max, so a seeded ``generator`` repeats the draw).

    Illegal actions are excluded explicitly (score ``-inf``), not only by their probability: no illegal
    action can be drawn as long as a row has one legal action. logits [..., A] -> actions [...] int64.
    """
    uniform = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-12, 1.0 - 1e-7)))
    scores = torch.log_softmax(masked_logits(logits, avail), dim=-1) + gumbel
    if avail is not None:
        scores = scores.masked_fill(~avail.bool(), -torch.inf)
    return scores.argmax(dim=-1)


def greedy_actions(logits: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
    """The most probable legal action per row: logits [..., A] -> [...] int64."""
    return masked_logits(logits, avail).argmax(dim=-1)


def entropy(logits: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
    """Entropy of the masked softmax per row, [...]; illegal actions contribute nothing."""
    logp = log_probs(logits, avail)
    return -(logp.exp() * logp).sum(dim=-1)


def gae(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor, terminated: torch.Tensor,
        done: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016) over time-first arrays, all [T, B].

    ``delta_t = r_t + gamma * (1 - terminated_t) * V(s_{t+1}) - V(s_t)`` and
    ``A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}``: ``terminated`` cuts the bootstrap, ``done``
    (terminated or truncated) cuts the sum, so a truncated step still bootstraps from ``next_values``.
    Returns (advantages, value targets ``A + V``), both [T, B]. Computed by TorchRL.
    """
    from torchrl.objectives.value.functional import generalized_advantage_estimate

    def batch_time(x: torch.Tensor) -> torch.Tensor:  # [T, B] -> [B, T, 1], TorchRL's layout (time_dim=-2)
        return x.transpose(0, 1).unsqueeze(-1)

    advantages, targets = generalized_advantage_estimate(
        gamma, lam, batch_time(values), batch_time(next_values), batch_time(rewards),
        batch_time(done.bool()), batch_time(terminated.bool()))
    return advantages.squeeze(-1).transpose(0, 1), targets.squeeze(-1).transpose(0, 1)


def normalize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit standard deviation (one value: just centred)."""
    if x.numel() < 2:
        return x - x.mean()
    return (x - x.mean()) / (x.std() + eps)


def clipped_policy_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor,
                        clip: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate (Schulman et al., 2017), to minimise; all inputs [M].

    ``-mean(min(rho * A, clip(rho, 1 - clip, 1 + clip) * A))`` with ``rho = exp(log_prob - old_log_prob)``.
    Returns (loss, fraction of rows whose ratio was clipped, approximate KL ``mean((rho - 1) - log rho)``).
    """
    log_ratio = log_prob - old_log_prob
    ratio = log_ratio.exp()
    surrogate = torch.min(ratio * advantages, ratio.clamp(1.0 - clip, 1.0 + clip) * advantages)
    with torch.no_grad():
        clipped = ((ratio - 1.0).abs() > clip).float().mean()
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
    return -surrogate.mean(), clipped, approx_kl


def value_loss(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Half the mean squared error of the critic to its (fixed) targets, all [M]."""
    return 0.5 * (values - targets.detach()).pow(2).mean()
