"""Per-agent training: train some agents while the others stay frozen.

Config (section ``training``, or the ``algospace train`` flags)::

    training:
      train_agents: [structure, tactical]   # --train-agents structure,tactical; null: all agents
      init_from: ~/algospace_results/mappo  # --init-from CHECKPOINT (or a trial/experiment folder: its newest)
      frozen_policy: checkpoint             # --frozen-policy {checkpoint,rule}

* Only ``train_agents`` are in RLlib's ``policies_to_train``; the others keep
  their weights. With MAPPO the shared critic trains anyway
  (``MAPPOTorchLearner.should_module_be_updated``): it learns the values of the
  team as it now plays.
* ``init_from``: every module the checkpoint has and this run can use starts
  from the checkpoint's weights (``learner_group/learner/rl_module/<id>``,
  through ``MultiRLModuleSpec(load_state_path=..., modules_to_load=...)``):
  the trained agents, the frozen agents (``frozen_policy: checkpoint``) and the
  shared critic with its value normalisation. Loaded once when the algorithm
  is built; a resumed run then restores its own checkpoint over it.
* ``frozen_policy: rule``: frozen agents act by
  :func:`rllib_algospace.policies.rule_action`, through :class:`RuleActorModule`
  (no parameters, never trained).
* Continue jointly afterwards: ``--init-from`` the per-agent run with all
  agents training. A module that is a rule policy in that checkpoint starts
  from fresh weights (nothing to load) when it trains, and stays the rule
  when it is frozen.

:func:`plan` checks the checkpoint against the config before Ray starts (one
line on any mismatch) and :func:`module_spec` turns the plan into the RLlib
module spec.
"""
from __future__ import annotations

import contextlib
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule

from rllib_algospace.policies import rule_action

MODULES_DIR = os.path.join("learner_group", "learner", "rl_module")
CRITIC_ID = "shared_critic"  # == rllib_algospace.mappo.modules.CRITIC_ID


class RuleActorModule(TorchRLModule):
    """A fixed rule policy as an RLModule: the logits put (almost) all
    probability on ``rule_action(agent, obs)``.

    It has no parameters (nothing to train; the MAPPO learner gives it no
    optimizer) and reads only the agent's own observation (``obs["obs"]`` when
    the critic input is in the observation). It runs inside env runners (a
    batch of observations, torch in and out) and in ``ModuleTeamPolicy``.
    ``model_config``: ``{"agent": name}``.
    """

    LOGIT_GAP = 30.0  # the other actions get probability ~e^-30 each

    def setup(self):
        mc = self.model_config or {}
        self.agent = mc["agent"]
        self.num_actions = int(self.action_space.n)

    def no_sync(self):
        """No gradients to synchronise. With several learners RLlib enters
        ``no_sync()`` of every torch module; this one is not wrapped in DDP
        (``MAPPOTorchLearner._make_modules_ddp_if_necessary``)."""
        return contextlib.nullcontext()

    def _forward(self, batch, **kwargs):
        obs = batch[Columns.OBS]
        if isinstance(obs, dict):
            obs = obs["obs"]
        obs_t = torch.as_tensor(obs)
        flat = obs_t.detach().cpu().numpy().astype(np.float32, copy=False)
        lead = flat.shape[:-1]
        rows = flat.reshape(-1, flat.shape[-1])
        actions = np.fromiter((rule_action(self.agent, row) for row in rows), dtype=np.int64, count=len(rows))
        logits = np.full((len(rows), self.num_actions), -self.LOGIT_GAP, dtype=np.float32)
        logits[np.arange(len(rows)), actions] = 0.0
        out = torch.from_numpy(logits.reshape(*lead, self.num_actions)).to(obs_t.device)
        return {Columns.ACTION_DIST_INPUTS: out}


# -- checkpoint planning (driver side, before Ray) --------------------------------


@dataclass
class InitPlan:
    checkpoint: str | None  # the checkpoint folder (resolved), or None
    load: list[str] = field(default_factory=list)  # module ids to load from it
    rule_agents: list[str] = field(default_factory=list)  # agents acting by rule_action
    notes: list[str] = field(default_factory=list)

    @property
    def modules_dir(self) -> str | None:
        return None if self.checkpoint is None else os.path.join(self.checkpoint, MODULES_DIR)


def _source_module(modules_dir: Path, module_id: str) -> dict | None:
    """Class name and constructor kwargs of a checkpointed module (None if absent)."""
    path = modules_dir / module_id / "class_and_ctor_args.pkl"
    if not path.exists():
        return None
    with open(path, "rb") as f:
        data = pickle.load(f)
    _, kwargs = data["ctor_args_and_kwargs"]
    return {"class": data["class"].__name__, "model_config": dict(kwargs.get("model_config") or {}), "observation_space": kwargs.get("observation_space")}


def plan(cfg) -> InitPlan:
    """Which modules start from ``training.init_from`` and which agents act by
    rule; raises ``CheckpointError`` (a ``ValueError``, one line) when the
    checkpoint does not fit this run."""
    from rllib_algospace.team_policy import CheckpointError, checkpoint_metadata, find_checkpoint

    tr, algo = cfg.training, cfg.algorithm
    frozen = set(tr.frozen_agents)
    agents = list(_agents())
    if tr.init_from is None:
        rules = [a for a in agents if a in frozen] if tr.frozen_policy == "rule" else []
        return InitPlan(None, [], rules, [])
    checkpoint = find_checkpoint(tr.init_from)
    meta = checkpoint_metadata(checkpoint)
    modules_dir = checkpoint / meta.get("modules_dir", MODULES_DIR)
    where = f"training.init_from: {checkpoint}"
    want_class = "ActorModule" if algo.centralized_critic else "ActorCriticModule"
    result = InitPlan(str(checkpoint))
    for agent in agents:
        if agent in frozen and tr.frozen_policy == "rule":
            result.rule_agents.append(agent)
            continue
        source = _source_module(modules_dir, agent)
        if source is None:
            raise CheckpointError(f"{where}: has no module {agent!r} (looked in {modules_dir / agent})")
        if source["class"] == RuleActorModule.__name__:
            if agent in frozen:
                result.rule_agents.append(agent)
                result.notes.append(f"{agent}: the checkpoint's policy is the fixed rule; it stays the rule (frozen)")
            else:
                result.notes.append(f"{agent}: the checkpoint's policy is the fixed rule (no weights); training starts from fresh weights")
            continue
        if source["class"] != want_class:
            kind = "MAPPO" if algo.centralized_critic else "independent PPO"
            raise CheckpointError(f"{where}: module {agent!r} is a {source['class']}, but this run ({kind}) uses {want_class}; set algorithm.centralized_critic as in that run")
        hiddens = list(source["model_config"].get("hiddens", []))
        if hiddens != list(algo.actor_hiddens):
            raise CheckpointError(f"{where}: module {agent!r} has hidden layers {hiddens}, but algorithm.actor_hiddens is {list(algo.actor_hiddens)}")
        activation = source["model_config"].get("activation", algo.activation)
        if activation != algo.activation:
            raise CheckpointError(f"{where}: module {agent!r} uses {activation}, but algorithm.activation is {algo.activation}")
        result.load.append(agent)
    if algo.centralized_critic:
        source = _source_module(modules_dir, CRITIC_ID)
        if source is None:
            result.notes.append("shared critic: not in the checkpoint; it starts from fresh weights")
        else:
            hiddens = list(source["model_config"].get("hiddens", []))
            if hiddens != list(algo.critic_hiddens):
                raise CheckpointError(f"{where}: the shared critic has hidden layers {hiddens}, but algorithm.critic_hiddens is {list(algo.critic_hiddens)}")
            source_input = meta.get("critic_input")
            want_input = "state_obs" if algo.critic_input == "state" else "concat_obs"
            if source_input is not None and source_input != want_input:
                raise CheckpointError(f"{where}: the shared critic was trained on {source_input}, but this run's algorithm.critic_input gives {want_input}")
            result.load.append(CRITIC_ID)
    return result


def _agents() -> tuple[str, ...]:
    from rllib_algospace.config import AGENT_NAMES

    return AGENT_NAMES


def module_spec(init: InitPlan):
    """``MultiRLModuleSpec`` for ``config.rl_module(rl_module_spec=...)``: the
    rule agents' specs and the modules to load (None when neither applies)."""
    if not init.rule_agents and not init.load:
        return None
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    # Every agent is listed (RLlib maps agents to modules, and their spaces,
    # through this spec's keys); class and model config of the others come from
    # the algorithm's defaults.
    specs = {agent: RLModuleSpec(module_class=RuleActorModule, model_config={"agent": agent}) if agent in init.rule_agents else RLModuleSpec() for agent in _agents()}
    return MultiRLModuleSpec(
        rl_module_specs=specs,
        load_state_path=init.modules_dir if init.load else None,
        modules_to_load=set(init.load) if init.load else None,
    )


def policies_to_train(cfg) -> list[str] | None:
    """The agents RLlib trains (None: all)."""
    agents = cfg.training.train_agents
    return None if agents is None else list(agents)


def describe(cfg, init: InitPlan) -> list[str]:
    """Lines printed at the start of a run."""
    lines = []
    tr = cfg.training
    if tr.train_agents is not None:
        frozen = ", ".join(tr.frozen_agents) or "none"
        how = "rule policies" if tr.frozen_policy == "rule" else "checkpoint weights"
        lines.append(f"training agents: {', '.join(tr.train_agents)}; frozen: {frozen} ({how})")
    if init.checkpoint:
        lines.append(f"init from {init.checkpoint}: {', '.join(init.load) or 'no modules'}")
    lines.extend(init.notes)
    return lines
