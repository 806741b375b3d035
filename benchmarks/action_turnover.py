"""Turnover of a random team: how much an untrained (uniform) team trades.

    python benchmarks/action_turnover.py --seeds 5 --out benchmarks/results/action_turnover.json

Runs a random team over the whole ``--split`` of the default
``simple_markets`` file (or ``--data``) for seeds 0..N-1 and reports,
per seed and as the mean: fills per 1,000 bars (every trade, resizes
included), closed round trips per 1,000 bars, mean holding time (bars per
position, from opening to flat or reversal), the share of bars with a
position, and the costs paid (commission + slippage) as a share of initial
equity. Two random teams: ``uniform`` draws every agent's action afresh on
every bar (``RandomTeamPolicy``); ``persistent`` keeps each agent's previous
action and redraws it with probability ``--redraw`` (0.1: a call lasts 10
bars on average), like a policy whose preferences change slowly, as an
early-training policy's do. No Ray, no torch. Meant to be run before and after a change of the
joint-action rules (``envs.market.trading``) on the same machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path


def holding_times(position) -> list[int]:
    """Lengths (in bars) of the runs of a non-zero position with one sign."""
    runs, length, sign = [], 0, 0
    for units in position:
        s = (units > 0) - (units < 0)
        if s != sign:
            if sign != 0:
                runs.append(length)
            length, sign = 0, s
        if s != 0:
            length += 1
    if sign != 0:
        runs.append(length)
    return runs


class PersistentRandomTeam:
    """Each agent keeps its last action; with probability ``redraw`` per bar
    it draws a new one uniformly."""

    def __init__(self, seed: int, redraw: float):
        import numpy as np

        from envs.market.env import N_ACTIONS

        self.rng = np.random.default_rng(seed)
        self.n_actions = N_ACTIONS
        self.redraw = redraw
        self.last: dict[str, int] = {}

    def __call__(self, observations) -> dict:
        for agent in observations:
            if agent not in self.last or self.rng.random() < self.redraw:
                self.last[agent] = int(self.rng.integers(self.n_actions[agent]))
        return {a: self.last[a] for a in observations}


def measure(seed: int, data: str | None, split: str, team: str, redraw: float) -> dict:
    import numpy as np

    from envs import algospace_market
    from rllib_algospace.policies import RandomTeamPolicy

    env = algospace_market.parallel_env(data=data, split=split, episode_length=0, random_start=False)
    policy = RandomTeamPolicy(seed) if team == "uniform" else PersistentRandomTeam(seed, redraw)
    obs, infos = env.reset(seed=seed)
    fills = 0
    positions, info = [], None
    while env.agents:
        obs, _, _, _, infos = env.step(policy(obs))
        info = infos["risk"]
        fills += info["fill_units"] != 0.0
        positions.append(info["position"])
    env.close()
    bars = len(positions)
    holds = holding_times(positions)
    return {
        "seed": seed,
        "bars": bars,
        "fills_per_1000": 1000.0 * fills / bars,
        "round_trips_per_1000": 1000.0 * info["closed_trades"] / bars,
        "mean_holding_bars": float(np.mean(holds)) if holds else 0.0,
        "exposed_share": float(np.mean(np.asarray(positions) != 0.0)),
        "costs_share": info["costs"] / env.config.initial_equity,
        "final_equity_share": info["equity"] / env.config.initial_equity,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--data", default=None, help="market file (default: the default simple_markets file)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--redraw", type=float, default=0.1, help="per-bar redraw probability of the persistent team")
    parser.add_argument("--out", default=None, help="JSON file for the raw results")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    teams = {}
    for team in ("uniform", "persistent"):
        runs = [measure(s, args.data, args.split, team, args.redraw) for s in range(args.seeds)]
        keys = [k for k in runs[0] if k not in ("seed", "bars")]
        teams[team] = {"runs": runs, "mean": {k: statistics.fmean(r[k] for r in runs) for k in keys}}
    from envs.market.trading import RISK_ACTIONS, TACTICAL_ACTIONS

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    result = {
        "command": "python benchmarks/action_turnover.py " + " ".join(argv if argv is not None else os.sys.argv[1:]),
        "commit": commit,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "tactical_actions": list(TACTICAL_ACTIONS),
        "risk_actions": list(RISK_ACTIONS),
        "split": args.split,
        "redraw": args.redraw,
        "teams": teams,
        "seconds": time.perf_counter() - t0,
    }
    print(f"tactical {TACTICAL_ACTIONS}, risk {RISK_ACTIONS}; whole {args.split} split, {args.seeds} seeds ({runs[0]['bars']} bars)")
    for team, found in teams.items():
        print(f" {team} random team" + (f" (redraw {args.redraw})" if team == "persistent" else ""))
        for k in keys:
            print(f"  {k:22s} {found['mean'][k]:10.3f}   per seed: " + ", ".join(f"{r[k]:.3g}" for r in found["runs"]))
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
