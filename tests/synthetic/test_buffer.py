"""The synthetic ring buffer (storage, ring writer, sampler) and its uncertainty-aware draws."""

from __future__ import annotations

import math

import pytest
import torch

from logo.errors import LogoError
from logo.synthetic import SamplingOptions, SyntheticBuffer


def _chi_square_critical(dof: int, z: float = 3.090232306167813) -> float:
    """99.9% quantile of the chi-square distribution (Wilson-Hilferty approximation)."""
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


def _filled(mode: str = "weighted", u: torch.Tensor | None = None, seed: int = 0, **options) -> SyntheticBuffer:
    u = torch.linspace(0.0, 3.0, 20) if u is None else u
    buf = SyntheticBuffer(capacity=100, sampling=SamplingOptions(mode, **options),
                          generator=torch.Generator().manual_seed(seed))
    buf.add({"rewards": torch.arange(len(u), dtype=torch.float32), "uncertainty": u})
    return buf


def test_priorities_follow_the_paper_formula_by_hand():
    u = torch.tensor([0.1, 1.0, 5.0])
    buf = _filled(u=u)
    relative = u / u.mean()  # mean 2.0333
    weights = torch.exp((1.0 - relative).clamp(-4.0, 1.0))
    torch.testing.assert_close(buf.probabilities(), weights / weights.sum())
    torch.testing.assert_close(buf.probabilities(), torch.tensor([0.5773, 0.3708, 0.0519]), atol=1e-4, rtol=0)
    # absolute u, a clip that binds, and a temperature
    buf = _filled(u=u, relative_uncertainty=False, priority_center=2.0, priority_low=-1.0,
                  priority_high=1.5, temperature=2.0)
    expected = torch.exp(torch.tensor([1.5, 1.0, -1.0]) / 2.0)
    torch.testing.assert_close(buf.probabilities(), expected / expected.sum())


def test_weighted_draws_match_the_target_distribution():
    buf = _filled()
    n = 200_000
    drawn = buf.sample(n)["rewards"].long()  # rewards hold each slot's index
    counts = torch.bincount(drawn, minlength=20).double()
    expected = buf.probabilities().double() * n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < _chi_square_critical(19), chi2
    # and the draw really is tilted: the lowest-u transition is drawn far more often than the highest
    assert counts[0] > 5 * counts[-1]


@pytest.mark.parametrize("mode", ["uniform", "penalty"])
def test_uniform_modes_draw_every_transition_equally(mode):
    buf = _filled(mode)
    torch.testing.assert_close(buf.probabilities(), torch.full((20,), 1 / 20))
    assert buf.effective_sample_size() == pytest.approx(1.0)
    batch = buf.sample(100_000)
    counts = torch.bincount(batch["uncertainty"].mul(19 / 3).round().long(), minlength=20).double()
    chi2 = float(((counts - 5000) ** 2 / 5000).sum())
    assert chi2 < _chi_square_critical(19)


def test_penalty_mode_subtracts_lambda_u_from_rewards():
    buf = _filled("penalty", penalty=0.5)
    batch = buf.sample(64)
    index = (batch["uncertainty"] * 19 / 3).round()
    torch.testing.assert_close(batch["rewards"], index - 0.5 * batch["uncertainty"])
    torch.testing.assert_close(batch["weights"], torch.ones(64))
    # the stored rewards are untouched
    torch.testing.assert_close(buf.storage.data["rewards"][:20], torch.arange(20, dtype=torch.float32))


def test_effective_sample_size_by_hand():
    buf = _filled(u=torch.tensor([1.0, 1.0, 3.0]), relative_uncertainty=False, priority_center=0.0,
                  priority_low=-10.0, priority_high=10.0)
    w = torch.exp(torch.tensor([-1.0, -1.0, -3.0], dtype=torch.float64))
    assert buf.effective_sample_size() == pytest.approx(float(w.sum() ** 2 / (3 * w.square().sum())))


def test_ring_buffer_keeps_the_newest_transitions():
    buf = SyntheticBuffer(capacity=5, sampling=SamplingOptions("uniform"))
    buf.add({"rewards": torch.tensor([0.0, 1.0, 2.0]), "uncertainty": torch.zeros(3)})
    buf.add({"rewards": torch.tensor([3.0, 4.0, 5.0, 6.0]), "uncertainty": torch.zeros(4)})
    assert len(buf) == 5 and buf.writer.added == 7
    assert sorted(buf.storage.data["rewards"].tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]
    buf.add({"rewards": torch.arange(10.0, 18.0), "uncertainty": torch.zeros(8)})  # more than the capacity
    assert sorted(buf.storage.data["rewards"].tolist()) == [13.0, 14.0, 15.0, 16.0, 17.0]
    with pytest.raises(KeyError, match="expected keys"):
        buf.add({"rewards": torch.zeros(2), "uncertainty": torch.zeros(2), "extra": torch.zeros(2)})


def test_cdf_is_rebuilt_when_the_buffer_changes():
    buf = _filled(u=torch.tensor([0.0, 10.0]), relative_uncertainty=False)
    assert (buf.sample(1000)["rewards"] == 0).float().mean() > 0.98  # weights e^1 vs e^-4
    buf.add({"rewards": torch.tensor([7.0]), "uncertainty": torch.tensor([0.0])})
    drawn = buf.sample(30_000)["rewards"]
    assert 0.45 < (drawn == 7).float().mean() < 0.55  # slots 0 and 2 now share the mass


def test_empty_buffer_and_bad_options():
    assert SyntheticBuffer(10).sample(4) is None
    with pytest.raises(LogoError, match="mode"):
        SamplingOptions("softmax")
    with pytest.raises(LogoError, match="low"):
        SamplingOptions(priority_low=2.0, priority_high=1.0)
    with pytest.raises(LogoError, match="temperature"):
        SamplingOptions(temperature=0.0)
    with pytest.raises(ValueError, match="capacity"):
        SyntheticBuffer(0)
