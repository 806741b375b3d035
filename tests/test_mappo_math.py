"""MAPPO maths without Ray: GAE against a textbook GAE, value normalisation,
the clipped masked value loss, and the OOM minibatch split."""
import numpy as np
import pytest
import torch

from rllib_algospace.mappo.gae import gae_per_episode
from rllib_algospace.mappo.oom import MIN_ROWS, OomSplitting, split_module_batches
from rllib_algospace.mappo.valuenorm import ValueNormalizer, clipped_value_loss

GAMMA, LAM = 0.97, 0.9


def textbook_gae(values, rewards, bootstrap):
    """values: V(s_0..s_{T-1}); rewards r_0..r_{T-1}; bootstrap V(s_T) or 0 if terminal."""
    T = len(rewards)
    adv = np.zeros(T)
    running = 0.0
    for t in reversed(range(T)):
        next_v = bootstrap if t == T - 1 else values[t + 1]
        delta = rewards[t] + GAMMA * next_v - values[t]
        running = delta + GAMMA * LAM * running
        adv[t] = running
    return adv, adv + values


def _chunk(values_with_bootstrap, rewards, terminated, truncated):
    """Lay out a chunk as RLlib's AddOneTsToEpisodesAndTruncate does: T real rows
    plus one bootstrap row; a chunk cut before its episode ended is marked
    truncated on its last real row, exactly like a time-limit truncation."""
    T = len(rewards)
    v = np.asarray(values_with_bootstrap, dtype=np.float64)[:, None]
    r = np.r_[rewards, 0.0][:, None]
    te = np.zeros((T + 1, 1))
    tr = np.zeros((T + 1, 1))
    if terminated:
        te[T - 1] = 1.0
    if truncated:
        tr[T - 1] = 1.0
    return v, r, te, tr


@pytest.mark.parametrize("ending", ["terminated", "truncated", "cut"])
def test_gae_matches_textbook(ending):
    rng = np.random.default_rng(0)
    T = 9
    values = rng.normal(size=T + 1)
    rewards = rng.normal(size=T)
    v, r, te, tr = _chunk(values, rewards, ending == "terminated", ending in ("truncated", "cut"))
    adv, targets = gae_per_episode(v, r, te, tr, GAMMA, LAM)
    bootstrap = 0.0 if ending == "terminated" else values[T]
    ref_adv, ref_targets = textbook_gae(values[:T], rewards, bootstrap)
    np.testing.assert_allclose(adv[:T, 0], ref_adv, atol=1e-5)
    np.testing.assert_allclose(targets[:T, 0], ref_targets, atol=1e-5)


def test_gae_columns_are_independent_agents():
    rng = np.random.default_rng(1)
    T, n = 6, 4
    values = rng.normal(size=(T + 1, n))
    rewards = np.r_[rng.normal(size=(T, n)), np.zeros((1, n))]
    te = np.zeros((T + 1, n))
    te[T - 1] = 1
    tr = np.zeros((T + 1, n))
    adv, _ = gae_per_episode(values, rewards, te, tr, GAMMA, LAM)
    for j in range(n):
        ref, _ = textbook_gae(values[:T, j], rewards[:T, j], 0.0)
        np.testing.assert_allclose(adv[:T, j], ref, atol=1e-5)


def test_value_normalizer_tracks_mean_and_std():
    norm = ValueNormalizer(2, beta=0.9)
    x = torch.zeros(3, 2)
    assert torch.equal(norm.normalize(x), x)  # identity before any statistics
    rng = np.random.default_rng(0)
    for _ in range(300):
        batch = torch.as_tensor(rng.normal([5.0, -2.0], [2.0, 0.5], size=(256, 2)), dtype=torch.float32)
        norm.update(batch.sum(0), (batch**2).sum(0), batch.shape[0])
    mean, std = norm.mean_std()
    np.testing.assert_allclose(mean.numpy(), [5.0, -2.0], atol=0.1)
    np.testing.assert_allclose(std.numpy(), [2.0, 0.5], atol=0.1)
    y = torch.randn(10, 2)
    torch.testing.assert_close(norm.denormalize(norm.normalize(y)), y)
    assert "mean_ema" in norm.state_dict() and "debias" in norm.state_dict()


def test_value_normalizer_debiases_first_update_and_can_be_off():
    norm = ValueNormalizer(1, beta=0.999)
    batch = torch.tensor([[1.0], [3.0]])
    norm.update(batch.sum(0), (batch**2).sum(0), 2)
    mean, std = norm.mean_std()
    assert mean.item() == pytest.approx(2.0) and std.item() == pytest.approx(1.0)
    off = ValueNormalizer(1, enabled=False)
    off.update(batch.sum(0), (batch**2).sum(0), 2)
    assert torch.equal(off.normalize(batch), batch)


def test_clipped_masked_value_loss():
    values = torch.tensor([[1.0], [0.0], [5.0]])
    old = torch.tensor([[0.0], [0.0], [0.0]])
    targets = torch.tensor([[2.0], [1.0], [100.0]])
    mask = torch.tensor([True, True, False])  # the huge third row must not count
    unclipped = clipped_value_loss(values, old, targets, mask, clip=None)
    assert unclipped.item() == pytest.approx(((1 - 2) ** 2 + (0 - 1) ** 2) / 2)
    clipped = clipped_value_loss(values, old, targets, mask, clip=0.2)
    # row 0: clipped prediction 0.2 -> (0.2 - 2)^2 = 3.24 > 1; row 1 unchanged (1)
    assert clipped.item() == pytest.approx((3.24 + 1.0) / 2)
    assert clipped_value_loss(values, old, targets, torch.zeros(3, dtype=torch.bool), 0.2).item() == 0.0


class _FakeLearner:
    def __init__(self, fits):
        self.fits = fits
        self.seen = []

    def _update(self, batch):
        rows = next(iter(batch.values()))["obs"]["obs"].shape[0]
        if rows > self.fits:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        self.seen.append({m: b["x"].tolist() for m, b in batch.items()})
        return rows


class _SplittingLearner(OomSplitting, _FakeLearner):
    pass


def _batch(rows):
    return {
        m: {"x": torch.arange(rows) + 100 * i, "obs": {"obs": torch.zeros(rows, 3), "state": torch.zeros(rows, 5)}}
        for i, m in enumerate(("default_policy", "other_module"))
    }


def test_oom_halves_the_minibatch_and_keeps_every_row():
    learner = _SplittingLearner(fits=20)
    learner._update(_batch(64))
    assert learner._oom_parts == 4  # 64 -> 32 -> 16 rows per part
    rows = sorted(x for part in learner.seen for x in part["default_policy"])
    assert rows == list(range(64))
    learner.seen.clear()
    learner._update(_batch(64))  # later minibatches are split straight away
    assert len(learner.seen) == 4


def test_oom_gives_up_below_the_minimum():
    learner = _SplittingLearner(fits=MIN_ROWS // 2)
    with pytest.raises(torch.OutOfMemoryError):
        learner._update(_batch(4 * MIN_ROWS))


def test_split_module_batches_nested():
    parts = split_module_batches(_batch(10), 3)
    assert [len(p["default_policy"]["x"]) for p in parts] == [3, 4, 3]
    assert parts[1]["other_module"]["obs"]["state"].shape == (4, 5)


def test_gae_chunks_equal_one_chunk_at_a_time():
    from rllib_algospace.mappo.gae import gae_chunks

    rng = np.random.default_rng(2)
    lengths = [5, 1, 9, 3]
    n = 3
    rows = sum(lengths)
    values, rewards = rng.normal(size=(rows, n)), rng.normal(size=(rows, n))
    te, tr = (rng.random((rows, n)) < 0.2).astype(float), (rng.random((rows, n)) < 0.2).astype(float)
    adv, targets = gae_chunks(values, rewards, te, tr, lengths, GAMMA, LAM)
    start = 0
    for length in lengths:
        sl = slice(start, start + length)
        a, t = gae_per_episode(values[sl], rewards[sl], te[sl], tr[sl], GAMMA, LAM)
        np.testing.assert_allclose(adv[sl], a, atol=1e-6)
        np.testing.assert_allclose(targets[sl], t, atol=1e-6)
        start += length
    with pytest.raises(ValueError, match="add up to"):
        gae_chunks(values, rewards, te, tr, [1, 2], GAMMA, LAM)
