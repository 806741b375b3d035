"""Teachers and behaviour cloning: the warm start of the team (no Ray).

``algospace pretrain`` (and ``training.warm_start`` before ``algospace
train``) clones a teacher into the four actor networks with a plain torch
loop over teacher-labelled observations of the **train split**:

* ``rule``: the rule baseline (``rllib_algospace.policies.rule_policy``),
  each agent's rule on its own observation.
* ``oracle``: a hindsight oracle, allowed for training labels only. The
  position path (short, flat or long at full strength) that earns the most
  over the split's open-to-open returns after paying ``oracle_cost_multiple``
  times the env's trading costs on every change, found by dynamic
  programming; structure calls its side at full strength, tactical holds it,
  risk allows it, and regime calls the ground-truth regime label (the rule's
  call where the data has no label). The cost multiple makes the path one a
  policy can follow: at the env's own costs the oracle trades every wiggle.

Labels come from running the market env (``envs.market``) on the split with
the teacher in control, so the observations (the calls of the other agents,
the risk agent's portfolio state) are those the teacher's own play produces;
with probability ``explore`` each agent's executed action is a random one
(the label stays the teacher's), so the clone also sees the states just off
the teacher's path and learns to come back to it.

The result is a warm-start file (``torch.save``): the actors' weights, the
network shape, the teacher, the actions' schema and each actor's agreement
with its teacher on the **val** split (labels there are for the report only;
the oracle's val path is computed from val prices for that report, never
trained on). ``TeamModule`` loads the actors from it (model config key
``warm_start``) and the learner keeps a frozen copy as the teacher policy of
its KL term (``teacher_kl_coeff``).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.market.env import AGENTS, N_ACTIONS, TEAM_LAYOUT, TEAM_SIZE, AlgoSpaceMarketEnv
from envs.market.trading import FLAT, FULL, LONG, SHORT, STRUCTURE_ACTIONS, TRADING_ACTIONS_SCHEMA
from rllib_algospace.artifacts import write_atomically

TEACHERS = ("rule", "oracle")
WARM_START_FORMAT = 2  # 2: the actors carry their input scaling (``networks.InputScaling``)
ORACLE_LEVELS = (-1, 0, 1)
STRONG_SHORT = STRUCTURE_ACTIONS.index("strong_short")
NEUTRAL = STRUCTURE_ACTIONS.index("neutral")
STRONG_LONG = STRUCTURE_ACTIONS.index("strong_long")


class WarmStartError(ValueError):
    """A warm-start file that cannot be used (one line naming the file)."""


# -- the hindsight oracle ------------------------------------------------------------
def oracle_positions(open_: np.ndarray, cost: float) -> np.ndarray:
    """The best position path over bars ``0..n-1`` of ``open_`` in hindsight.

    ``p[t]`` in {-1, 0, +1} is decided at bar ``t``, filled at the open of
    ``t + 1`` and held until the open of ``t + 2`` (the env's timing), so it
    earns ``p[t] * log(open[t+2] / open[t+1])``; every change pays ``cost``
    per unit of position traded (in log-return units). The last two bars
    earn nothing (no return known) and keep the position before them.
    Maximises the sum over the path by dynamic programming (Viterbi).
    """
    n = len(open_)
    levels = np.asarray(ORACLE_LEVELS, dtype=np.float64)
    k = len(levels)
    ret = np.zeros(n)
    if n > 2:
        ret[: n - 2] = np.diff(np.log(np.asarray(open_, dtype=np.float64)))[1:]
    switch = cost * np.abs(levels[:, None] - levels[None, :])  # [from, to]
    back = np.zeros((n, k), dtype=np.int8)
    score = -switch[list(ORACLE_LEVELS).index(0)]  # start flat
    for t in range(n):
        total = score[:, None] - switch  # [from, to]
        best_from = np.argmax(total, axis=0)
        back[t] = best_from
        score = total[best_from, np.arange(k)] + levels * ret[t]
    path = np.empty(n, dtype=np.int8)
    j = int(np.argmax(score))
    for t in range(n - 1, -1, -1):
        path[t] = levels[j]
        j = back[t, j]
    return path


def oracle_actions(position: int, label: int, rule_regime: int) -> tuple[int, int, int, int]:
    """The joint action (``AGENTS`` order) that holds ``position``."""
    regime = label if label >= 0 else rule_regime
    if position > 0:
        return regime, STRONG_LONG, LONG, FULL
    if position < 0:
        return regime, STRONG_SHORT, SHORT, FULL
    return regime, NEUTRAL, FLAT, FULL


# -- labelled steps --------------------------------------------------------------------
@dataclass
class LabelledSteps:
    obs: np.ndarray  # (n, TEAM_SIZE) float32 team observations
    actions: np.ndarray  # (n, len(AGENTS)) int64: the teacher's action for each agent

    def __len__(self) -> int:
        return len(self.actions)


def label_steps(teacher: str, env_config: dict, *, steps: int, seed: int = 0, explore: float = 0.1, oracle_cost_multiple: float = 10.0, progress=None) -> LabelledSteps:
    """``steps`` team observations of the env ``env_config`` (its split) with
    the teacher's actions, the teacher in control (see the module docstring)."""
    from rllib_algospace.policies import rule_policy

    if teacher not in TEACHERS:
        raise ValueError(f"unknown teacher {teacher!r}; teachers are {', '.join(TEACHERS)}")
    env = AlgoSpaceMarketEnv(**{**env_config, "render_mode": None})
    rng = np.random.default_rng(seed)
    obs_out = np.empty((steps, TEAM_SIZE), dtype=np.float32)
    act_out = np.empty((steps, len(AGENTS)), dtype=np.int64)
    positions = labels = None
    split_start = env.market.splits[env.config.split][0]
    if teacher == "oracle":
        start, stop = env.market.splits[env.config.split]
        cfg = env.config
        cost = (cfg.commission_bps + cfg.slippage_bps) * 1e-4 * oracle_cost_multiple
        positions = oracle_positions(env.market.base("open").rows(start, stop), cost)
        labels = env.market.base("regime_label").rows(start, stop)
    sizes = np.array([N_ACTIONS[a] for a in AGENTS])
    n = 0
    episode_seed = seed
    last_report = time.monotonic()
    try:
        while n < steps:
            env.reset(seed=episode_seed)
            episode_seed += 1
            while env.agents and n < steps:
                team = env.team_observation()
                views = {a: team[TEAM_LAYOUT[a][0] : TEAM_LAYOUT[a][1]] for a in AGENTS}
                if teacher == "rule":
                    chosen = rule_policy(views)
                    wanted = [chosen[a] for a in AGENTS]
                else:
                    i = env.bar_index - split_start
                    wanted = oracle_actions(int(positions[i]), int(labels[i]), rule_policy.action("regime", views["regime"]))
                obs_out[n] = team
                act_out[n] = wanted
                n += 1
                act = np.where(rng.random(len(AGENTS)) < explore, rng.integers(sizes), wanted)
                env.advance({a: int(act[j]) for j, a in enumerate(AGENTS)}, with_info=False)
                if progress is not None and time.monotonic() - last_report > 10:
                    progress(f"  labelled {n:,}/{steps:,} steps")
                    last_report = time.monotonic()
    finally:
        env.close()
    return LabelledSteps(obs_out, act_out)


# -- behaviour cloning ---------------------------------------------------------------
def clone_actors(data: LabelledSteps, *, hiddens, activation: str, epochs: int = 8, lr: float = 1e-3, batch_size: int = 512, seed: int = 0, threads: int | None = None, scaling=None, progress=None) -> dict:
    """Fit one ``Actor`` per agent to the teacher's actions (cross-entropy on
    the agent's own slice of the team observation). ``scaling``: the team
    observation's ``(shift, scale)`` (``envs.market.env.team_input_scaling``),
    which each actor applies to its slice; None: unscaled. Returns {agent: Actor}."""
    import torch

    from rllib_algospace.networks import Actor

    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    obs = torch.from_numpy(data.obs)
    actions = torch.from_numpy(data.actions)
    n = len(data)
    actors = {}
    gen = torch.Generator().manual_seed(seed)
    for j, agent in enumerate(AGENTS):
        start, stop = TEAM_LAYOUT[agent]
        x = obs[:, start:stop].contiguous()
        y = actions[:, j]
        own = tuple(np.asarray(v, dtype=np.float32)[start:stop] for v in scaling) if scaling is not None else None
        actor = Actor(stop - start, N_ACTIONS[agent], list(hiddens), activation, scaling=own)
        optim = torch.optim.Adam(actor.parameters(), lr=lr)
        t0 = time.monotonic()
        for epoch in range(epochs):
            order = torch.randperm(n, generator=gen)
            total = 0.0
            for i in range(0, n, batch_size):
                idx = order[i : i + batch_size]
                loss = torch.nn.functional.cross_entropy(actor(x[idx]), y[idx])
                optim.zero_grad()
                loss.backward()
                optim.step()
                total += float(loss.detach()) * len(idx)
            if progress is not None:
                progress(f"  {agent}: epoch {epoch + 1}/{epochs}, cross-entropy {total / n:.4f} ({time.monotonic() - t0:.0f}s)")
        actor.eval()
        actors[agent] = actor
    return actors


def agreement(actors: dict, data: LabelledSteps) -> dict[str, float]:
    """Share of steps on which each actor's greedy action is its teacher's."""
    import torch

    out = {}
    obs = torch.from_numpy(data.obs)
    with torch.no_grad():
        for j, agent in enumerate(AGENTS):
            start, stop = TEAM_LAYOUT[agent]
            greedy = actors[agent](obs[:, start:stop]).argmax(-1).numpy()
            out[agent] = float(np.mean(greedy == data.actions[:, j]))
    return out


# -- the warm-start file ---------------------------------------------------------------
def save_warm_start(path: str | os.PathLike, actors: dict, meta: dict) -> Path:
    """Write the actors and ``meta`` atomically (temp file, then rename)."""
    import torch

    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": WARM_START_FORMAT,
        "actions_schema": TRADING_ACTIONS_SCHEMA,
        "layout": {a: list(TEAM_LAYOUT[a]) for a in AGENTS},
        "meta": meta,
        "actors": {a: actor.state_dict() for a, actor in actors.items()},
    }
    write_atomically(path, lambda fh: torch.save(payload, fh))
    return path


def load_warm_start(path: str | os.PathLike, *, hiddens=None, activation: str | None = None) -> dict:
    """The warm-start payload, checked: format, actions' schema, layout, and
    (when given) the network shape the caller will load it into."""
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise WarmStartError(f"{path}: no such warm-start file (make one with `algospace pretrain`)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise WarmStartError(f"{path}: not a readable warm-start file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(payload, dict) or payload.get("format") != WARM_START_FORMAT:
        raise WarmStartError(f"{path}: not a warm-start file of format {WARM_START_FORMAT} (found {payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r})")
    if payload.get("actions_schema") != TRADING_ACTIONS_SCHEMA:
        raise WarmStartError(f"{path}: its actions follow schema {payload.get('actions_schema')!r}, this code's are {TRADING_ACTIONS_SCHEMA!r}; pretrain again")
    layout = {a: tuple(v) for a, v in payload.get("layout", {}).items()}
    if layout != {a: tuple(TEAM_LAYOUT[a]) for a in AGENTS}:
        raise WarmStartError(f"{path}: made for another observation layout; pretrain again with this version")
    meta = payload.get("meta", {})
    if hiddens is not None and list(meta.get("hiddens", [])) != list(hiddens):
        raise WarmStartError(f"{path}: actors of hidden sizes {meta.get('hiddens')}, this run's algorithm.actor_hiddens is {list(hiddens)}")
    if activation is not None and meta.get("activation") != activation:
        raise WarmStartError(f"{path}: actors with activation {meta.get('activation')!r}, this run's algorithm.activation is {activation!r}")
    return payload


def build_actors(payload: dict) -> dict:
    """Fresh ``Actor`` modules holding the payload's weights, in eval mode."""
    from rllib_algospace.networks import Actor

    meta = payload["meta"]
    actors = {}
    for agent in AGENTS:
        start, stop = TEAM_LAYOUT[agent]
        actor = Actor(stop - start, N_ACTIONS[agent], list(meta["hiddens"]), meta["activation"])
        actor.load_state_dict(payload["actors"][agent])
        actor.eval()
        actors[agent] = actor
    return actors


# -- the whole job ---------------------------------------------------------------------
def pretrain(
    env_config: dict,
    out: str | os.PathLike,
    *,
    teacher: str = "rule",
    steps: int = 200_000,
    val_steps: int = 50_000,
    epochs: int = 8,
    hiddens=(64, 64),
    activation: str = "relu",
    explore: float = 0.1,
    oracle_cost_multiple: float = 10.0,
    scale_inputs: bool = False,
    seed: int = 0,
    progress=print,
) -> dict:
    """Label ``steps`` train-split steps with ``teacher``, clone them into the
    actors, report agreement on ``val_steps`` val-split steps (teacher in
    control, no exploration), and write the warm-start file ``out``.
    ``env_config``: the market env's settings (its ``split`` is replaced).
    ``scale_inputs``: the actors scale their inputs by the market file's
    train-split statistics (as ``algorithm.scale_inputs`` has the team).
    Returns the report (also stored in the file's ``meta``)."""
    t0 = time.monotonic()
    progress(f"pretrain: labelling {steps:,} train steps with the {teacher} teacher")
    train = label_steps(teacher, {**env_config, "split": "train"}, steps=steps, seed=seed, explore=explore, oracle_cost_multiple=oracle_cost_multiple, progress=progress)
    labelled_s = time.monotonic() - t0
    progress(f"pretrain: cloning into {len(AGENTS)} actors ({'x'.join(map(str, hiddens))} {activation}, {epochs} epochs)")
    scaling = None
    if scale_inputs:
        from envs.market.env import input_statistics, team_input_scaling

        env = AlgoSpaceMarketEnv(**{**env_config, "split": "train"})
        try:
            scaling = team_input_scaling(input_statistics(env.market))
        finally:
            env.close()
    actors = clone_actors(train, hiddens=hiddens, activation=activation, epochs=epochs, seed=seed, threads=os.cpu_count(), scaling=scaling, progress=progress)
    val = label_steps(teacher, {**env_config, "split": "val"}, steps=val_steps, seed=seed + 10_000, explore=0.0, oracle_cost_multiple=oracle_cost_multiple)
    report = {
        "teacher": teacher,
        "steps": steps,
        "epochs": epochs,
        "explore": explore,
        "oracle_cost_multiple": oracle_cost_multiple if teacher == "oracle" else None,
        "seed": seed,
        "hiddens": list(hiddens),
        "activation": activation,
        "scale_inputs": bool(scale_inputs),
        "data": env_config.get("data"),
        "train_agreement": agreement(actors, train),
        "val_agreement": agreement(actors, val),
        "teacher_action_shares": {a: np.bincount(train.actions[:, j], minlength=N_ACTIONS[a]).astype(float).round(0).tolist() for j, a in enumerate(AGENTS)},
        "seconds": {"labels": labelled_s, "total": time.monotonic() - t0},
    }
    save_warm_start(out, actors, report)
    progress("pretrain: agreement with the teacher on val: " + ", ".join(f"{a} {report['val_agreement'][a]:.0%}" for a in AGENTS) + f" ({math.ceil(report['seconds']['total'])}s) -> {out}")
    return report
