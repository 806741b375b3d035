"""Stress scenarios on the test split, the stress report and regime adaptability (no Ray)."""
import dataclasses
import json
import math

import h5py
import numpy as np
import pytest

from envs.data import stress as market_stress
from envs.data.bars import PRICE_FIELDS, aggregate_bars
from envs.data.provenance import file_sha256
from envs.data.store import read_attrs, validate_market_file
from rllib_algospace import reports
from rllib_algospace.evaluation import stress
from rllib_algospace.evaluation import evaluate_with_baselines, run_policy, write_report
from rllib_algospace.evaluation.runner import regime_name
from rllib_algospace.policies import buy_and_hold_policy, flat_policy, rule_policy


@pytest.fixture(scope="module")
def original(market_file):
    """The saved file and its SHA-256 before any test of this module touched it."""
    digest = file_sha256(market_file)
    yield market_file, digest
    assert file_sha256(market_file) == digest, "the saved market file changed"


def _read(path):
    with h5py.File(path, "r") as f:
        return {key: f[key][:] for key in [f"base/{n}" for n in f["base"]] + [f"htf/{n}" for n in f["htf"]] + [f"features/{n}" for n in f["features"]]}


def _consistent(o, h, l, c):
    return bool(np.all(o > 0) and np.all(l > 0) and np.all(h >= np.maximum(o, c)) and np.all(l <= np.minimum(o, c)))


@pytest.mark.parametrize("scenario", stress.BAR_SCENARIOS)
def test_scenario_changes_only_test_bars(original, tmp_path, scenario):
    path, digest = original
    out = market_stress.stressed_market_file(path, scenario, tmp_path / f"{scenario}.h5", split="test")
    assert file_sha256(path) == digest
    validate_market_file(out)
    a, b = read_attrs(path), read_attrs(out)
    assert b["splits"] == a["splits"] and b["first_valid"] == a["first_valid"] and b["htf_multiple"] == a["htf_multiple"]
    old, new = _read(path), _read(out)
    start, stop = a["splits"]["test"]
    for key in ("base/timestamp", "base/volume", "base/regime_label", "base/htf_visible", "htf/timestamp"):
        assert np.array_equal(old[key], new[key]), key
    # train and val bars, and every feature row visible before the test split, bit for bit
    for field in PRICE_FIELDS:
        assert np.array_equal(old[f"base/{field}"][:start], new[f"base/{field}"][:start]), field
    assert np.array_equal(old["features/tactical"][:start], new["features/tactical"][:start])
    seen_htf = int(old["base/htf_visible"][start - 1])
    for key in ("features/regime", "features/structure", "htf/open", "htf/high", "htf/low", "htf/close", "htf/volume"):
        assert np.array_equal(old[key][:seen_htf], new[key][:seen_htf]), key
    # the test bars did change, and stay consistent and positive
    o, h, l, c = (new[f"base/{f}"][start:stop] for f in PRICE_FIELDS)
    assert not np.array_equal(c, old["base/close"][start:stop])
    assert _consistent(o, h, l, c)
    assert _consistent(*(new[f"htf/{f}"] for f in PRICE_FIELDS))
    assert "stress" in b["source"]


def test_scenario_arithmetic(market_file):
    base, _, attrs = market_stress.read_bars(market_file)
    start, stop = attrs["splits"]["test"]
    n = stop - start
    logc = np.log(base.close)

    def rets(bars):
        return np.diff(np.log(bars.close))[start - 1 : stop - 1]  # close-to-close returns of the split's bars

    r0 = rets(base)
    mid = n // 2
    flipped = rets(market_stress.stress_bars(base, "trend_reversal", start, stop))
    assert np.allclose(flipped[mid:], -r0[mid:], atol=1e-12) and np.array_equal(flipped[:mid], r0[:mid])
    at = math.floor(0.25 * n)
    vol = rets(market_stress.stress_bars(base, "volatility_x3", start, stop))
    mu = r0[at:].mean()
    assert np.allclose(vol[at:] - mu, 3.0 * (r0[at:] - mu), atol=1e-12)
    assert vol[at:].std() == pytest.approx(3.0 * r0[at:].std(), rel=1e-9)
    gap = market_stress.stress_bars(base, "overnight_gap", start, stop)
    g = rets(gap)
    assert g[mid] == pytest.approx(r0[mid] + math.log(0.95), abs=1e-12)
    assert np.allclose(np.delete(g, mid), np.delete(r0, mid), atol=1e-12)
    t = start + mid
    assert gap.open[t] / gap.close[t - 1] == pytest.approx(0.95 * base.open[t] / base.close[t - 1], rel=1e-12)
    crash = market_stress.stress_bars(base, "flash_crash", start, stop)
    assert crash.close[t + 2] / base.close[t + 2] == pytest.approx(0.92, rel=1e-9)  # -8% over 3 bars
    assert crash.close[t + 8] / base.close[t + 8] == pytest.approx(1.0, rel=1e-9)  # full rebound over 6 more
    assert crash.low[t : t + 3].min() < base.low[t : t + 3].min()
    for bars in (gap, crash):
        assert np.array_equal(bars.close[:t], base.close[:t])  # untouched before the event
        assert _consistent(bars.open, bars.high, bars.low, bars.close)
    assert np.allclose(np.log(crash.close[t + 9 :]), logc[t + 9 :], atol=1e-9)
    with pytest.raises(ValueError, match="no parameter"):
        market_stress.stress_bars(base, "flash_crash", start, stop, depth=0.1)
    with pytest.raises(ValueError, match="unknown stress scenario"):
        market_stress.stress_bars(base, "meteor", start, stop)


def test_split_bounds_kept_when_plan_layout_would_move_them(original, tmp_path, monkeypatch):
    import envs.data.dataset as dataset
    from envs.data.store import Layout

    real = dataset.plan_layout

    def shifted(*args, **kwargs):
        layout = real(*args, **kwargs)
        return Layout(layout.first_valid, {k: (a + 7 if k != "train" else a, b + 7 if k != "test" else b) for k, (a, b) in layout.splits.items()})

    monkeypatch.setattr(dataset, "plan_layout", shifted)
    out = market_stress.stressed_market_file(original[0], "overnight_gap", tmp_path / "gap.h5")
    assert read_attrs(out)["splits"] == read_attrs(original[0])["splits"]
    validate_market_file(out)


def test_imported_higher_timeframe_bars_move_with_their_base_bars(tmp_path):
    from envs.data.dataset import build_market_file
    from envs.data.synthetic import generate_bars

    base = generate_bars(preset="simple_markets", n_bars=6000, seed=3)
    agg = aggregate_bars(base, 6)
    htf = dataclasses.replace(agg, volume=agg.volume * 1.5)  # a vendor's own HTF file: not the aggregate
    path = build_market_file(base, tmp_path / "imported.h5", htf=htf)
    out = market_stress.stressed_market_file(path, "trend_reversal", tmp_path / "rev.h5")
    old, new = _read(path), _read(out)
    start, stop = read_attrs(path)["splits"]["test"]
    seen = int(old["base/htf_visible"][start - 1])
    for key in ("htf/open", "htf/high", "htf/low", "htf/close", "htf/volume", "features/regime", "features/structure"):
        assert np.array_equal(old[key][:seen], new[key][:seen]), key
    assert np.array_equal(old["htf/volume"], new["htf/volume"])
    assert not np.array_equal(old["htf/close"], new["htf/close"])
    assert _consistent(*(new[f"htf/{f}"] for f in PRICE_FIELDS))


def test_doubled_costs_double_the_costs_of_a_fixed_action_policy(market_file):
    ref = run_policy(buy_and_hold_policy, data=market_file, split="test", full_split=True)
    doubled = run_policy(buy_and_hold_policy, data=market_file, split="test", full_split=True, env_overrides=stress.cost_overrides())
    assert ref.metrics["trades"] == doubled.metrics["trades"] and np.array_equal(ref.position > 0, doubled.position > 0)
    assert ref.metrics["costs"] > 0
    # commission x2 on a fill price moved by slippage x2: 2 x (1 + O(slippage)) exactly
    assert doubled.metrics["costs"] / ref.metrics["costs"] == pytest.approx(2.0, rel=1e-3)
    assert stress.cost_overrides({"commission_bps": 3.0}) == {"commission_bps": 6.0, "slippage_bps": 1.0}
    flat = run_policy(flat_policy, data=market_file, split="test", full_split=True, env_overrides=stress.cost_overrides())
    assert flat.metrics["costs"] == 0.0


def test_stress_report_for_the_rule_baseline(original, tmp_path):
    path, digest = original
    result = stress.stress_test(rule_policy, data=path, workdir=tmp_path / "work")
    assert file_sha256(path) == digest
    assert list(result["scenarios"]) == list(stress.SCENARIOS)
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == sorted(f"stress-{s}.h5" for s in stress.BAR_SCENARIOS)
    limit = result["drawdown_limit"]
    flags = []
    for name, s in result["scenarios"].items():
        assert s["survived"] == (s["team"]["max_drawdown"] <= limit and not s["team"]["terminated_early"])
        assert s["change"]["sharpe"] == pytest.approx(s["team"]["sharpe"] - result["reference"]["team"]["sharpe"])
        flags.append(s["survived"])
    assert result["score"] == pytest.approx(np.mean(flags)) and 0.0 <= result["score"] <= 1.0
    assert result["score"] == stress.stress_test_score(result["scenarios"], limit)
    # the scenarios reach the market the policy trades: buy & hold sees them
    ref_bh = result["reference"]["buy_and_hold"]
    sc = result["scenarios"]
    assert sc["flash_crash"]["buy_and_hold"]["max_drawdown"] > max(0.07, ref_bh["max_drawdown"])
    assert (1 + sc["overnight_gap"]["buy_and_hold"]["total_return"]) / (1 + ref_bh["total_return"]) == pytest.approx(0.95, rel=2e-3)
    assert sc["double_costs"]["buy_and_hold"]["costs"] == pytest.approx(2 * ref_bh["costs"], rel=1e-3)
    assert sc["double_costs"]["team"]["costs"] > result["reference"]["team"]["costs"]
    # a tighter limit can only lower the score
    assert stress.stress_test_score(sc, 0.0) <= result["score"]
    # reports: valid JSON (NaN -> null), Markdown, HTML, figure, text
    from rllib_algospace.evaluation import json_safe

    json.loads(json.dumps(json_safe(dict(result)), allow_nan=False))
    md = reports.to_markdown(stress.stress_blocks(result, image="stress.png"))
    assert all(name in md for name in stress.SCENARIOS) and "stress_test_score" in md
    assert "<table>" in reports.to_html(stress.stress_blocks(result), "t")
    reports.atomic_figure(tmp_path / "stress.png", stress.stress_figure(result))
    assert (tmp_path / "stress.png").stat().st_size > 0
    assert "stress_test_score" in stress.format_stress(result)
    # a custom scenario set with parameters
    small = stress.stress_test(rule_policy, data=path, scenarios=("overnight_gap",), params={"overnight_gap": {"gap": -0.2}}, drawdown_limit=0.01)
    assert list(small["scenarios"]) == ["overnight_gap"] and small["scenarios"]["overnight_gap"]["params"]["gap"] == -0.2
    with pytest.raises(ValueError, match="unknown stress scenario"):
        stress.stress_test(rule_policy, data=path, scenarios=("meteor",))


def test_regime_adaptability(market_file):
    run = run_policy(rule_policy, data=market_file, split="test", full_split=True)
    adapt = stress.regime_adaptability(run)
    assert adapt["source"] == "ground_truth"
    regimes = adapt["regimes"]
    assert sum(v["steps"] for v in regimes.values()) == len(run.step_return)
    assert np.prod([1 + v["return"] for v in regimes.values()]) == pytest.approx(1 + run.metrics["total_return"], rel=1e-9)
    for name, v in regimes.items():
        assert 0 <= v["hit_rate"] <= 1 or math.isnan(v["hit_rate"])
        assert v["regime_accuracy"] == pytest.approx(run.per_regime[name]["regime_accuracy"])
        assert v["sharpe"] == pytest.approx(run.per_regime[name]["sharpe"])
    d = adapt["dispersion"]
    counted = [v for v in regimes.values() if v["steps"] >= d["min_steps"]]
    assert d["regimes_counted"] == len(counted)
    assert d["sharpe_range"] == pytest.approx(max(v["sharpe"] for v in counted) - min(v["sharpe"] for v in counted))
    assert regimes[d["worst_regime"]]["sharpe"] == d["min_sharpe"]
    # without labels: the regime agent's own calls
    unlabelled = dataclasses.replace(run, regime_label=np.full_like(run.regime_label, -1))
    detected = stress.regime_adaptability(unlabelled)
    assert detected["source"] == "detected"
    calls = run.actions["regime"]
    assert {k: v["steps"] for k, v in detected["regimes"].items()} == {regime_name(int(c)): int((calls == c).sum()) for c in np.unique(calls)}
    assert all("regime_accuracy" not in v for v in detected["regimes"].values())


def test_evaluate_stress_section_in_the_report(market_file, tmp_path):
    """What ``algospace evaluate --stress`` adds, with the rule team as the policy."""
    results = evaluate_with_baselines(rule_policy, data=market_file, split="test", full_split=True)
    json_path, _ = write_report(results, results.runs["team"], tmp_path)
    extra = stress.add_stress_section(rule_policy, results.runs["team"], tmp_path, data=market_file, split="test", env_overrides={}, json_path=json_path)
    document = json.loads(json_path.read_text())
    assert {"meta", "results", "episodes", "stress", "regime_adaptability"} <= set(document)
    assert document["stress"]["reference"]["team"]["sharpe"] == pytest.approx(results["team"]["sharpe"])
    assert set(document["stress"]["scenarios"]) == set(stress.SCENARIOS)
    for key in ("stress_md", "stress_html", "stress_png"):
        assert (tmp_path / extra[key].split("/")[-1]).stat().st_size > 0
    assert "Regime adaptability" in (tmp_path / "stress.md").read_text()
