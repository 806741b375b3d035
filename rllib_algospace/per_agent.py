"""Per-agent training: train some agents while the others stay frozen.

Config (section ``training``, or the ``algospace train`` flags)::

    training:
      train_agents: [structure, tactical]   # --train-agents structure,tactical; null: all agents
      init_from: ~/algospace_results/mappo  # --init-from CHECKPOINT (or a trial/experiment folder: its best)
      frozen_policy: checkpoint             # --frozen-policy {checkpoint,rule}

* The team is one RLModule (``TeamModule``); a frozen agent's actor has no
  trainable parameters there (``frozen_agents``) and no policy loss, so its
  weights never move. The critic always trains: it learns the values of the
  team as it now plays.
* ``init_from``: the team module starts from the checkpoint's weights
  (``learner_group/learner/rl_module/default_policy``, loaded by RLlib through
  ``RLModuleSpec(load_state_path=...)``): every actor the checkpoint has and
  this run uses, the critic and its value normalisation. Loaded once when the
  algorithm is built; a resumed run then restores its own checkpoint over it.
* ``frozen_policy: rule``: frozen agents act by
  :func:`rllib_algospace.policies.rule_action`, through
  ``rllib_algospace.mappo.modules.RuleActor`` (no parameters).
* Continue jointly afterwards: ``--init-from`` the per-agent run with all
  agents training. An agent that is the rule in that checkpoint starts from
  fresh weights (nothing to load) when it trains, and stays the rule when it
  is frozen.

:func:`plan` checks the checkpoint against the config before Ray starts (one
line on any mismatch); :func:`configure` applies the plan to an
``MAPPOConfig``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from rllib_algospace.mappo.modules import CHECKPOINT_FORMAT


@dataclass
class InitPlan:
    checkpoint: str | None  # the checkpoint folder (resolved), or None
    module_dir: str | None = None  # the team module's folder in it
    rule_agents: list[str] = field(default_factory=list)  # agents acting by rule_action
    frozen_agents: list[str] = field(default_factory=list)  # agents whose weights stay
    notes: list[str] = field(default_factory=list)


def plan(cfg) -> InitPlan:
    """How the team module starts; raises ``CheckpointError`` (a
    ``ValueError``, one line) when the checkpoint does not fit this run."""
    from rllib_algospace.checkpoints import checkpoint_metadata, find_checkpoint, require_format

    tr, algo = cfg.training, cfg.algorithm
    frozen = list(tr.frozen_agents)
    if tr.init_from is None:
        rules = frozen if tr.frozen_policy == "rule" else []
        return InitPlan(None, None, rules, [a for a in frozen if a not in rules])
    checkpoint = find_checkpoint(tr.init_from)
    meta = checkpoint_metadata(checkpoint)
    where = f"training.init_from: {checkpoint}"
    require_format(meta, where)
    source = meta.get("model_config") or {}
    result = InitPlan(str(checkpoint), os.path.join(str(checkpoint), meta["module_dir"]))
    mismatch = []
    if bool(source.get("centralized_critic", True)) != algo.centralized_critic:
        kind = lambda c: "MAPPO" if c else "independent PPO"  # noqa: E731
        raise _error(f"{where}: that run was {kind(source.get('centralized_critic', True))}, this one is {kind(algo.centralized_critic)}; set algorithm.centralized_critic as in that run")
    for key, ours in (("hiddens", list(algo.actor_hiddens)), ("critic_hiddens", list(algo.critic_hiddens)), ("activation", algo.activation), ("critic_input", algo.critic_input)):
        theirs = source.get(key)
        if theirs is not None and (list(theirs) if isinstance(theirs, (list, tuple)) else theirs) != ours:
            name = "actor_hiddens" if key == "hiddens" else key
            mismatch.append(f"algorithm.{name} is {ours}, the checkpoint's is {theirs}")
    if mismatch:
        raise _error(f"{where}: does not fit this run: {mismatch[0]}")
    source_rules = set(source.get("rule_agents") or ())
    for agent in frozen:
        if tr.frozen_policy == "rule" or agent in source_rules:
            result.rule_agents.append(agent)
            if agent in source_rules and tr.frozen_policy != "rule":
                result.notes.append(f"{agent}: the checkpoint's policy is the fixed rule; it stays the rule (frozen)")
        else:
            result.frozen_agents.append(agent)
    for agent in sorted(source_rules - set(frozen)):
        result.notes.append(f"{agent}: the checkpoint's policy is the fixed rule (no weights); training starts from fresh weights")
    return result


def _error(message: str):
    from rllib_algospace.checkpoints import CheckpointError

    return CheckpointError(message)


def configure(config, init: InitPlan) -> None:
    """Apply the plan to a ``MAPPOConfig``: rule and frozen agents, and the
    checkpoint the team module starts from."""
    config.mappo(rule_agents=list(init.rule_agents), frozen_agents=list(init.frozen_agents))
    if init.module_dir is not None:
        from ray.rllib.core.rl_module.rl_module import RLModuleSpec

        config.rl_module(rl_module_spec=RLModuleSpec(load_state_path=init.module_dir))


def describe(cfg, init: InitPlan) -> list[str]:
    """Lines printed at the start of a run."""
    lines = []
    tr = cfg.training
    if tr.train_agents is not None:
        frozen = ", ".join(tr.frozen_agents) or "none"
        how = "rule policies" if tr.frozen_policy == "rule" else "checkpoint weights"
        lines.append(f"training agents: {', '.join(tr.train_agents)}; frozen: {frozen} ({how})")
    if init.checkpoint:
        lines.append(f"init from {init.checkpoint} (checkpoint format {CHECKPOINT_FORMAT})")
    lines.extend(init.notes)
    return lines
