"""MACQL's pieces as plain functions: legal greedy actions and the conservative (CQL) terms (the TD target is
:func:`logo.policy.losses.td_target`).

Shapes: B transitions, N agents, A discrete actions, K sampled joint actions.
"""

from __future__ import annotations

import math

import torch

from logo.policy.losses import mask_logits


def greedy_legal(q: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
    """Per-agent greedy actions among the legal ones: q [B, N, A], avail [B, N, A] bool -> [B, N] int64."""
    return mask_logits(q, avail).argmax(-1)


def sample_legal_joint_actions(avail: torch.Tensor | None, shape: tuple[int, ...], samples: int,
                               generator: torch.Generator | None = None, device: torch.device | None = None
                               ) -> torch.Tensor:
    """``samples`` joint actions per transition, each agent's action uniform over its legal ones.

    One uniform number per (transition, sample, agent) picks the ``floor(u * count)``-th of the agent's ``count``
    legal actions, read from the agent's actions sorted legal-first; nothing of size [B, K, N, A] is drawn or
    built (drawing a score per action and taking the best legal one cost about 1 ms of a CPU update at
    B = 256, K = 32, N = 3, A = 5, 5x this; docs/results.md, "Remaining candidates, measured"). An agent
    with no legal action gets action 0, as :func:`greedy_legal` gives it.

    Args:
        avail: [B, N, A] bool legal actions, or None (every action legal).
        shape: (B, N, A), the Q values' shape.
        samples: K, joint actions per transition.
    Returns:
        [B, K, N] int64 (a transposed view of a [B, N, K] tensor).
    """
    b, n, a = shape
    device = avail.device if avail is not None else device
    u = torch.rand((b, n, samples), generator=generator, device=device)  # [B, N, K]
    if avail is None:
        return (u * a).long().clamp_max(a - 1).transpose(1, 2)
    count = avail.sum(-1, keepdim=True)  # [B, N, 1]
    legal_first = torch.argsort((~avail).to(torch.uint8), dim=-1, stable=True)  # [B, N, A]: legal actions, ascending
    # float rounding can give floor(u * count) == count for u just below 1: the clamp keeps it the last legal one
    rank = (u * count).long().clamp_max(count - 1).clamp_min(0)  # [B, N, K]
    return legal_first.gather(-1, rank).transpose(1, 2)


def soft_max(values: torch.Tensor, temperature: float = 1.0, dim: int = -1) -> torch.Tensor:
    """``temperature * logsumexp(values / temperature)`` over ``dim``: the log-sum-exp of CQL(H) at a temperature.

    At 1 it is CQL's own term; towards 0 it approaches ``max`` (the push-down then lands on the greedy action, the
    one the TD target bootstraps from); large, it approaches ``mean + temperature * log(count)``."""
    return temperature * torch.logsumexp(values / temperature, dim=dim)


def joint_cql_penalty(q_tot_samples: torch.Tensor, q_tot_data: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """MACQL's conservative term on the joint action, estimated from uniformly sampled legal joint actions.

    CQL(H) treats the joint action as one action: ``log sum_a exp Q_tot(s, a) - Q_tot(s, a_data)``.
    The sum over all A^N joint actions is estimated from the K sampled joint actions together with
    the dataset's, as ``log mean exp`` over those K + 1 values. Keeping the dataset action in the
    set keeps the term bounded below (by ``-log(K + 1)``) like the exact one, so it cannot be
    lowered forever by inflating Q_tot(data); it is 0 when Q_tot is flat. At a ``temperature`` T,
    ``T * log mean exp(Q / T)`` (:func:`soft_max`).

    Args:
        q_tot_samples: [B, K] Q_tot of the sampled joint actions.
        q_tot_data: [B] Q_tot of the dataset's joint action.
        temperature: T of the log-sum-exp (1: CQL(H)).
    Returns:
        [B] per-transition penalty.
    """
    values = torch.cat([q_tot_samples, q_tot_data.unsqueeze(-1)], dim=-1)  # [B, K + 1]
    return soft_max(values, temperature) - temperature * math.log(values.shape[-1]) - q_tot_data


def local_cql_penalty(q: torch.Tensor, actions: torch.Tensor, avail: torch.Tensor | None = None,
                      temperature: float = 1.0) -> torch.Tensor:
    """Per-agent CQL term averaged over agents: ``mean_i [logsumexp_{legal a} Q_i(o_i, a) - Q_i(o_i, a_i)]``.

    Exact (no sampling); with equal agent weights it is CFCQL's counterfactual regulariser.

    Args:
        q: [B, N, A] per-agent Q values.
        actions: [B, N] dataset actions.
        avail: [B, N, A] bool legal actions, or None.
        temperature: T of the log-sum-exp (:func:`soft_max`; 1: CQL(H)).
    Returns:
        [B] per-transition penalty.
    """
    lse = soft_max(mask_logits(q, avail), temperature)  # [B, N] (illegal entries stay far below after / T)
    return (lse - q.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)).mean(-1)


def counterfactual_joint_actions(q: torch.Tensor, q_chosen: torch.Tensor) -> torch.Tensor:
    """Per-agent Q vectors of every single-agent deviation from the data's joint action.

    Entry ``[b, i, a]`` is the data's per-agent Q vector with agent i's value replaced by ``Q_i(o_i, a)``:
    agent i plays a, every other agent keeps its dataset action. Mixed, these give
    ``Q_tot(s, a_i = a, a_-i = data)``.

    Args:
        q: [B, N, A] per-agent Q values.
        q_chosen: [B, N] per-agent Q values of the dataset actions.
    Returns:
        [B, N, A, N] (deviating agent, its action, then the N mixer inputs).
    """
    n = q.shape[1]
    deviates = torch.eye(n, dtype=torch.bool, device=q.device)[None, :, None, :]  # [1, N(i), 1, N(j)]
    return torch.where(deviates, q.unsqueeze(-1), q_chosen[:, None, None, :])


def counterfactual_cql_penalty(q_tot_deviations: torch.Tensor, q_tot_data: torch.Tensor,
                               avail: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
    """CFCQL's counterfactual conservative term (Shao et al., 2023), agents weighted equally.

    ``mean_i [log sum_{legal a} exp Q_tot(s, a_i = a, a_-i = data) - Q_tot(s, a_data)]``: exact (every legal
    action of every agent, no sampling), on the mixed value, so it reaches the mixer like the joint term does;
    but one agent deviates at a time, so its size does not grow with the number of agents and each sum
    contains the data's own action (the term is >= 0, and 0 only when every deviation is infinitely worse).
    CFCQL weights agents by how far the behaviour deviates from the policy; equal weights are the simple case.

    Args:
        q_tot_deviations: [B, N, A] Q_tot of each single-agent deviation (:func:`counterfactual_joint_actions`).
        q_tot_data: [B] Q_tot of the dataset's joint action.
        avail: [B, N, A] bool legal actions, or None.
        temperature: T of the log-sum-exp (:func:`soft_max`; 1: CQL(H)).
    Returns:
        [B] per-transition penalty.
    """
    lse = soft_max(mask_logits(q_tot_deviations, avail), temperature)  # [B, N]
    return (lse - q_tot_data.unsqueeze(-1)).mean(-1)


def cql_continuous_penalty(q_random: torch.Tensor, q_policy: torch.Tensor, q_data: torch.Tensor,
                           log_density_random: torch.Tensor | float, log_prob_policy: torch.Tensor) -> torch.Tensor:
    """CQL(H) penalty with importance-sampled actions (Kumar et al. 2020, appendix), per transition.

    ``log mean_k exp(Q(s, a_k) - log mu_k(a_k)) - Q(s, a_data)``: the first term estimates
    ``log integral exp Q(s, a) da`` from ``K1`` actions drawn uniformly and ``K2`` drawn from the
    policy, each scored against the density it was drawn from. Minimising it pushes Q down on
    out-of-data actions and up on the data's.

    Args:
        q_random: [B, K1] Q of uniformly random actions.
        q_policy: [B, K2] Q of policy actions.
        q_data: [B] Q of the dataset actions.
        log_density_random: scalar (or [B, K1]) log density of the uniform proposal, ``-D log 2`` on [-1, 1]^D.
        log_prob_policy: [B, K2] log-probabilities of the policy actions (detached by the caller).

    Returns:
        [B] the penalty of each transition.
    """
    scores = torch.cat([q_random - log_density_random, q_policy - log_prob_policy], dim=1)  # [B, K1 + K2]
    return torch.logsumexp(scores, dim=1) - math.log(scores.shape[1]) - q_data
