"""The PettingZoo environment: PettingZoo's own tests, determinism, accounting, splits, tasks."""
import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test

from envs import algospace_market
from envs.market.env import AGENTS


def _random_episode(env, seed, max_steps=10_000):
    obs, infos = env.reset(seed=seed)
    return [(obs, None, infos)] + _random_steps(env, seed, max_steps)


def _random_steps(env, seed, max_steps=10_000):
    """Random joint actions on an env already reset, to the episode's end."""
    rng = np.random.default_rng(seed)
    trace = []
    steps = 0
    while env.agents and steps < max_steps:
        actions = {a: int(rng.integers(env.action_space(a).n)) for a in env.agents}
        obs, rewards, terms, truncs, infos = env.step(actions)
        trace.append((obs, rewards, infos))
        steps += 1
    return trace


def test_parallel_api(market_file):
    parallel_api_test(algospace_market.parallel_env(data=market_file, episode_length=300), num_cycles=400)


def test_parallel_seed(market_file):
    parallel_seed_test(lambda: algospace_market.parallel_env(data=market_file, episode_length=100))


def test_aec_api(market_file):
    api_test(algospace_market.env(data=market_file, episode_length=100), num_cycles=150)


def test_aec_seed(market_file):
    seed_test(lambda: algospace_market.env(data=market_file, episode_length=100), num_cycles=50)


def test_default_data_without_arguments():
    env = algospace_market.parallel_env()
    obs, infos = env.reset(seed=0)
    assert env.market.source.startswith("synthetic:simple_markets")
    assert list(obs) == list(AGENTS) == env.possible_agents
    aec = algospace_market.env()
    aec.reset(seed=0)
    assert aec.agent_selection == "regime"


def test_observations_inside_spaces_and_float32(market_file):
    env = algospace_market.parallel_env(data=market_file, episode_length=500)
    for obs, _, _ in _random_episode(env, seed=5):
        for agent, value in obs.items():
            assert value.dtype == np.float32
            assert env.observation_space(agent).contains(value), agent
        assert env.state_space.contains(env.state())
    sizes = {a: env.observation_space(a).shape[0] for a in AGENTS}
    assert sizes == {"regime": 96 * 12, "structure": 48 * 8 + 4, "tactical": 60 * 7 + 4 + 5, "risk": 9 + 4 + 5 + 4}


def test_determinism_same_seed_same_episode(market_file):
    a = _random_episode(algospace_market.parallel_env(data=market_file, episode_length=200), seed=11)
    b = _random_episode(algospace_market.parallel_env(data=market_file, episode_length=200), seed=11)
    assert len(a) == len(b)
    for (oa, ra, ia), (ob, rb, ib) in zip(a, b):
        for agent in oa:
            np.testing.assert_array_equal(oa[agent], ob[agent])
        assert ra == rb
        assert ia["regime"]["equity"] == ib["regime"]["equity"]
    c = _random_episode(algospace_market.parallel_env(data=market_file, episode_length=200), seed=12)
    assert a[0][2]["regime"]["bar"] != c[0][2]["regime"]["bar"]  # another start


def test_equity_identity(market_file):
    """equity = cash + position * price at every step, and the per-step PnL sums
    to final minus initial equity, net of every cost."""
    env = algospace_market.parallel_env(data=market_file, episode_length=2_000, commission_bps=2.0, slippage_bps=1.0)
    trace = _random_episode(env, seed=3)
    pnl = 0.0
    fills = 0
    for _, _, infos in trace[1:]:
        info = infos["risk"]
        assert info["equity"] == pytest.approx(info["cash"] + info["position"] * info["price"], rel=1e-12)
        pnl += info["step_pnl"]
        fills += info["fill_units"] != 0.0
    final = trace[-1][2]["risk"]
    assert fills > 20 and final["costs"] > 0
    assert pnl == pytest.approx(final["equity"] - env.config.initial_equity, abs=1e-6)


def test_team_reward_is_equity_change_minus_drawdown_penalty(market_file):
    env = algospace_market.parallel_env(data=market_file, episode_length=300, drawdown_penalty=0.0)
    for _, rewards, infos in _random_episode(env, seed=4)[1:]:
        expected = infos["regime"]["step_pnl"] / env.config.initial_equity * env.config.reward_scale
        assert all(r == pytest.approx(expected) for r in rewards.values())


def test_drawdown_penalty_only_beyond_the_limit(market_file):
    kw = dict(data=market_file, episode_length=400, max_leverage=3.0, commission_bps=5.0)
    free = algospace_market.parallel_env(drawdown_penalty=0.0, **kw)
    taxed = algospace_market.parallel_env(drawdown_penalty=2.0, drawdown_limit=0.01, **kw)
    beyond = 0
    for (_, r_free, _), (_, r_taxed, infos) in zip(_random_episode(free, seed=3)[1:], _random_episode(taxed, seed=3)[1:]):
        dd = infos["regime"]["drawdown"]
        if dd <= 0.01:
            assert r_taxed["regime"] == pytest.approx(r_free["regime"])  # within the limit: no penalty
        else:
            beyond += 1
            assert r_taxed["regime"] <= r_free["regime"] + 1e-12
    assert beyond > 0


def test_differential_sharpe_reward(market_file):
    eta = 0.01
    env = algospace_market.parallel_env(data=market_file, episode_length=300, reward="dsr", dsr_eta=eta, drawdown_penalty=0.0)
    a = b = 0.0
    nonzero = 0
    for _, rewards, infos in _random_episode(env, seed=5)[1:]:
        info = infos["regime"]
        r = info["step_pnl"] / (info["equity"] - info["step_pnl"])
        var = b - a * a
        expected = (b * (r - a) - 0.5 * a * (r * r - b)) / var**1.5 if var > 1e-18 else 0.0
        expected = max(-10.0, min(10.0, expected))
        a, b = a + eta * (r - a), b + eta * (r * r - b)
        assert rewards["tactical"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        nonzero += expected != 0.0
    assert nonzero > 50
    with pytest.raises(ValueError, match="reward"):
        algospace_market.parallel_env(data=market_file, reward="sharpe")


def test_shaping_mix_with_w_shared(market_file):
    env = algospace_market.parallel_env(data=market_file, episode_length=300, w_shared=0.0, regime_accuracy_bonus=1.0)
    env.reset(seed=0)
    while env.agents:
        label = int(env.market.base("regime_label").row(env.bar_index))
        _, rewards, _, _, _ = env.step({"regime": label, "structure": 2, "tactical": 0, "risk": 0})
        assert rewards["regime"] == 1.0
        assert rewards["tactical"] == 0.0


def test_episode_stays_inside_its_split(market_file):
    for split in ("train", "val", "test"):
        env = algospace_market.parallel_env(data=market_file, split=split, episode_length=0, random_start=False)
        start, stop = env.market.splits[split]
        trace = _random_episode(env, seed=1)
        bars = [infos["regime"]["bar"] for _, _, infos in trace]
        assert bars[0] == start and bars[-1] == stop - 1
        assert len(trace) - 1 == stop - 1 - start


def test_equity_floor_terminates(market_file):
    env = algospace_market.parallel_env(data=market_file, episode_length=0, equity_floor=0.999, max_leverage=5.0, commission_bps=20.0)
    env.reset(seed=0)
    steps = 0
    while env.agents:
        _, _, terms, truncs, infos = env.step({"regime": 0, "structure": 4 if steps % 2 else 0, "tactical": 1 if steps % 2 else 2, "risk": 0})
        steps += 1
    assert all(terms.values()) and not any(truncs.values())
    assert infos["regime"]["equity"] < 0.999 * env.config.initial_equity


def test_curriculum_tasks_switch_on_reset(market_file, complex_file):
    env = algospace_market.parallel_env(tasks={"easy": market_file, "hard": complex_file}, task="easy", episode_length=50)
    env.reset(seed=0)
    assert env.get_task() == "easy" and "simple_markets" in env.market.source
    env.set_task("hard")
    assert env.get_task() == "hard"
    assert "simple_markets" in env.market.source  # not mid-episode
    env.reset(seed=0)
    assert "complex_regimes" in env.market.source
    with pytest.raises(ValueError, match="unknown task"):
        env.set_task("nope")


def test_render_text(market_file):
    env = algospace_market.parallel_env(data=market_file, render_mode="ansi", episode_length=10)
    env.reset(seed=0)
    env.step({"regime": 0, "structure": 4, "tactical": 1, "risk": 0})
    line = env.render()
    assert "equity=" in line and "tactical=long" in line


def test_infos_carry_evaluation_fields(market_file):
    env = algospace_market.parallel_env(data=market_file, episode_length=10)
    env.reset(seed=0)
    _, _, _, _, infos = env.step({"regime": 0, "structure": 4, "tactical": 1, "risk": 0})
    info = infos["tactical"]
    for key in ("equity", "position", "fill_units", "fill_price", "fill_commission", "regime_label", "agreed", "trade_closed"):
        assert key in info
    assert info["agreed"] and info["fill_units"] > 0 and info["position"] > 0


def test_bad_config_is_one_line_error(market_file):
    with pytest.raises(ValueError, match="unknown environment config key 'episode_len'"):
        algospace_market.parallel_env(data=market_file, episode_len=10)
    with pytest.raises(ValueError, match="split"):
        algospace_market.parallel_env(data=market_file, split="holdout")


def test_in_memory_and_streaming_agree(market_file):
    a = _random_episode(algospace_market.parallel_env(data=market_file, episode_length=300), seed=8)
    b = _random_episode(algospace_market.parallel_env(data=market_file, episode_length=300, in_memory=True), seed=8)
    for (oa, _, _), (ob, _, _) in zip(a, b):
        for agent in oa:
            np.testing.assert_array_equal(oa[agent], ob[agent])


def test_leak_canary_sees_the_future_only_when_switched_on(market_file):
    """The test-only canary writes the coming return into the newest rows of
    structure and tactical; off (the default) the observation is the plain one."""
    from envs.market.env import FEATURE_SIZES, TEAM_LAYOUT

    col = TEAM_LAYOUT["tactical"][0] + FEATURE_SIZES["tactical"] - 7
    structure_col = TEAM_LAYOUT["structure"][0] + FEATURE_SIZES["structure"] - 8
    plain = algospace_market.parallel_env(data=market_file, episode_length=0, random_start=False)
    leaky = algospace_market.parallel_env(data=market_file, episode_length=0, random_start=False, leak_future_bars=4)
    plain.reset(seed=0)
    leaky.reset(seed=0)
    leaked, future = [], []
    for _ in range(400):
        a, b = plain.team_observation(), leaky.team_observation()
        assert np.array_equal(np.delete(a, [structure_col, col]), np.delete(b, [structure_col, col]))
        assert b[structure_col] == b[col]
        t = leaky.bar_index
        close = leaky.market.base("close")
        leaked.append(b[col])
        future.append(np.log(close.row(t + 4) / leaky.market.base("open").row(t + 1)))
        action = {"regime": 0, "structure": 2, "tactical": 0, "risk": 0}
        plain.step(action)
        leaky.step(action)
    assert np.corrcoef(leaked, future)[0, 1] > 0.9
    with pytest.raises(ValueError, match="leak_future_bars"):
        algospace_market.parallel_env(data=market_file, leak_future_bars=-1)


def test_cost_scale_charges_a_share_of_the_costs(market_file):
    """Training's cost warm-up: ``set_cost_scale(s)`` charges s times the
    configured commission and slippage; 0 charges none; the same actions
    give the same fills, and only the costs differ."""
    kw = dict(data=market_file, episode_length=600, commission_bps=2.0, slippage_bps=1.0, drawdown_penalty=0.0)
    runs = {}
    for scale in (1.0, 0.5, 0.0):
        env = algospace_market.parallel_env(**kw)
        env.reset(seed=5)
        env.set_cost_scale(scale)
        trace = _random_steps(env, seed=5)
        runs[scale] = trace[-1][2]["risk"]
    assert runs[1.0]["costs"] > 0 and runs[0.0]["costs"] == 0.0
    assert runs[0.5]["costs"] == pytest.approx(0.5 * runs[1.0]["costs"], rel=0.02)
    assert runs[0.0]["equity"] > runs[0.5]["equity"] > runs[1.0]["equity"]
    with pytest.raises(ValueError, match="cost scale must be in"):
        algospace_market.parallel_env(**kw).set_cost_scale(1.5)

