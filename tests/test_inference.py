"""The live decision path (rllib_algospace.inference.TeamPolicy.on_bar) against
the env and the RLlib modules over the whole test split of the tiny model's
data: same observations, same actions, same portfolio."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

AGENTS = ("regime", "structure", "tactical", "risk")


@pytest.fixture(scope="module")
def bundle(tiny_checkpoint, tmp_path_factory):
    from rllib_algospace.export import export_bundle

    out = tmp_path_factory.mktemp("inference") / "bundle"
    export_bundle(tiny_checkpoint, out, sample_size=128)
    return out


@pytest.fixture(scope="module")
def bars(market_file):
    import h5py

    with h5py.File(market_file, "r") as f:
        cols = {k: f[f"base/{k}"][:] for k in ("timestamp", "open", "high", "low", "close", "volume")}
    n = len(cols["timestamp"])
    return [{"timestamp": int(cols["timestamp"][i]), **{k: float(cols[k][i]) for k in ("open", "high", "low", "close", "volume")}} for i in range(n)]


def test_importing_inference_does_not_import_ray():
    code = "import sys; from rllib_algospace.inference import TeamPolicy; assert 'ray' not in sys.modules, sorted(m for m in sys.modules if 'ray' in m)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_on_bar_matches_env_and_rllib_modules_over_the_test_split(bundle, bars, tiny_checkpoint, market_file):
    """(a) same actions as ModuleTeamPolicy on the env's observations, (c) the
    same observations (features, calls, portfolio) as the env when fed the
    same bars, and the same simulated portfolio."""
    from envs.market.env import AlgoSpaceMarketEnv
    from rllib_algospace.inference import TeamPolicy
    from rllib_algospace.checkpoints import ModuleTeamPolicy

    policy = TeamPolicy.load(bundle)
    modules = ModuleTeamPolicy.from_checkpoint(tiny_checkpoint)
    env = AlgoSpaceMarketEnv(data=market_file, split="test", episode_length=0, random_start=False)
    start, stop = env.market.splits["test"]
    assert policy.warm_up(bars[:start]) == start and policy.ready
    obs, info = env.reset(seed=0)
    worst = {a: 0.0 for a in AGENTS}
    steps = exposed = mismatched = 0
    for t in range(start, stop):
        decision = policy.on_bar(bars[t])
        assert decision.ready and decision.index == t
        live = policy.observations()
        for a in AGENTS:
            assert live[a].shape == obs[a].shape
            worst[a] = max(worst[a], float(np.abs(live[a] - obs[a]).max()))
        actions = modules(obs)
        mismatched += policy.act(obs) != actions  # (a) TorchScript vs RLModules on the env's observations
        assert decision.actions == actions, f"bar {t}: live {decision.actions} vs modules {actions}"
        state = info["risk"]
        assert decision.equity == pytest.approx(state["equity"], rel=1e-12) and decision.position == pytest.approx(state["position"], rel=1e-12, abs=1e-12)
        exposed += decision.position != 0.0
        steps += 1
        obs, _, term, trunc, info = env.step(actions)
        if any(term.values()) or any(trunc.values()):
            break
    env.close()
    assert steps >= stop - start - 1
    assert mismatched == 0
    assert max(worst.values()) <= 1e-5, worst
    print(f"parity over {steps} bars: max abs obs diff {worst}; {exposed} bars with a position")


def test_decisions_carry_target_actions_and_confidences(bundle, bars, market_file):
    from envs.data.reader import MarketData
    from envs.market.trading import target_exposure
    from rllib_algospace.inference import TeamPolicy

    policy = TeamPolicy.load(bundle)
    first_valid = MarketData(market_file).first_valid
    decisions = [policy.on_bar(b) for b in bars[: first_valid + 200]]
    assert not any(d.ready for d in decisions[:first_valid]) and all(d.ready for d in decisions[first_valid:])
    assert all(d.target_exposure == 0.0 and not d.actions for d in decisions[:first_valid])
    for d in decisions[first_valid:]:
        assert set(d.actions) == set(AGENTS) == set(d.confidences) == set(d.action_names)
        assert all(0.0 < c <= 1.0 for c in d.confidences.values())
        expected, agreed = target_exposure(d.exposure, d.actions["structure"], d.actions["tactical"], d.actions["risk"], policy.trading["max_leverage"])
        assert d.target_exposure == expected and d.agreed == agreed
        # entries are capped by max_leverage; holding keeps the (price-drifted) exposure
        assert abs(d.target_exposure) <= max(policy.trading["max_leverage"], abs(d.exposure)) + 1e-12
    probs = policy.probabilities(policy.observations())
    last = decisions[-1]
    for a in AGENTS:
        assert last.confidences[a] == pytest.approx(float(probs[a][last.actions[a]]), abs=1e-6)
    d = decisions[-1].to_dict()
    assert {"timestamp", "target_exposure", "actions", "confidences", "fill"} <= set(d)


def test_timestamps_and_bad_bars(bundle, bars):
    from datetime import datetime, timezone

    from rllib_algospace.inference import TeamPolicy, bar_timestamp

    ts = bars[0]["timestamp"]
    when = datetime.fromtimestamp(ts, tz=timezone.utc)
    assert bar_timestamp(when) == bar_timestamp(when.isoformat().replace("+00:00", "Z")) == bar_timestamp(np.datetime64(ts, "s")) == ts
    policy = TeamPolicy.load(bundle)
    policy.on_bar({**bars[0], "timestamp": when})
    with pytest.raises(ValueError, match="not after the previous bar"):
        policy.on_bar(bars[0])
    with pytest.raises(ValueError, match="missing 'close'"):
        policy.on_bar({k: v for k, v in bars[1].items() if k != "close"})
    with pytest.raises(ValueError, match="no volume"):
        policy.on_bar({**bars[1], "volume": None})
    assert policy.on_bar(bars[1]).index == 1


def _hostile_bars(good: dict, freq: int):
    """(name, bar, the field or phrase the message must name)."""
    h, l = good["high"], good["low"]
    yield "close above high", {**good, "close": h * 1.01}, "'close'"
    yield "open far outside the range", {**good, "open": h * 1000}, "'open'"
    yield "open below low", {**good, "open": l * 0.5}, "'open'"
    yield "millisecond timestamp", {**good, "timestamp": good["timestamp"] * 1000}, "milliseconds"
    yield "1-minute bar after a 5-minute bar", {**good, "timestamp": good["timestamp"] + 60}, f"{freq} s bars"
    for key in ("open", "high", "low", "close"):
        for bad in ("abc", None, [1.0], True, float("nan"), -1.0, 0.0, float("inf")):
            yield f"{key}={bad!r}", {**good, key: bad}, f"'{key}'"
    for bad in ("abc", [1], {"x": 1}):
        yield f"volume={bad!r}", {**good, "volume": bad}, "'volume'"
    for bad in ("yesterday", [1], None, True):
        yield f"timestamp={bad!r}", {**good, "timestamp": bad}, "'timestamp'"
    for bad in ([1, 2, 3], "bar", None, 5):
        yield f"bar {type(bad).__name__}", bad, "mapping"


def test_hostile_bars_are_refused_naming_the_field(bundle, bars):
    from rllib_algospace.inference import TeamPolicy

    policy = TeamPolicy.load(bundle)
    policy.on_bar(bars[0])
    freq = policy.freq_seconds
    good = bars[1]
    cases = list(_hostile_bars(good, freq))
    assert len(cases) >= 45
    for name, bar, named in cases:
        with pytest.raises(ValueError) as err:
            policy.on_bar(bar)
        text = str(err.value)
        assert named in text and "\n" not in text, (name, text)
    assert policy.on_bar(good).index == 1  # none of them was taken
