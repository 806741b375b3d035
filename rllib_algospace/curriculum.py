"""Curriculum learning: train on easier markets first, then harder ones.

The stages come from the ``curriculum:`` section of the experiment config
(``tune_configs/curriculum.yaml``)::

    curriculum:
      stages:
        - {name: simple_markets, episodes: 2000, promote_when: {metric: val_sharpe, above: 1.0}}
        - {name: moderate_volatility, episodes: 3000, promote_when: {metric: val_sharpe, above: 1.0}}
        - {name: complex_regimes, episodes: 5000}

A stage name is a task of the env: a key of ``env.tasks`` (stage -> market
file), or with the default data one of the synthetic presets (their files are
generated before Ray starts and passed to the env as ``tasks``).

How it works (:class:`CurriculumCallback`):

* Every env runner's env, training **and** evaluation, is switched with
  ``set_task(stage)`` (``envs.market.env.AlgoSpaceMarketEnv.set_task``): at
  start-up, after a checkpoint restore, on env runners recreated after a
  failure (``on_env_runners_recreated``), and at the end of every iteration
  (promotions take effect there; it also catches an env runner that Ray
  restarted by itself, which RLlib does not report). The env
  applies a new task at its next ``reset()``. Training envs are vectorised
  and auto-reset, so **a stage switch takes effect from each env's next
  episode**: the episode running at the switch finishes on the old market.
  Validation resets its envs before every round, so it always runs on the
  current stage's data (its ``evaluation.split``).
* Each finished episode logs which task it ran on (the ``task`` field of its
  infos) as ``result["env_runners"]["curriculum_episodes"][task]`` (count this
  iteration; ``result["evaluation"]["env_runners"]["curriculum_episodes"]`` for
  validation). A stage counts only the training episodes played on its own
  market, so the episodes still finishing on the old market after a switch do
  not count for the new stage.
* A stage ends after ``episodes`` training episodes, or earlier when
  ``promote_when`` holds for a validation round run in this stage (a fresh
  ``result["evaluation"]`` with ``<metric>`` above/below the threshold). The
  last stage never ends; training goes on there until the experiment stops.
* The stage is part of the algorithm's checkpointed state
  (``MAPPO.extra_state["curriculum"]``, saved in ``algorithm_state.pkl``), so
  ``--resume`` (``Tuner.restore``) and ``Algorithm.from_checkpoint`` continue
  in the stage the checkpoint was taken in.
* Every result carries ``curriculum_stage`` (index), ``curriculum_task``
  (name) and ``curriculum_stage_episodes`` (training episodes so far in it).
"""
from __future__ import annotations

import math
from functools import partial

from ray.rllib.callbacks.callbacks import RLlibCallback

from rllib_algospace.callbacks import team_envs

STATE_KEY = "curriculum"  # in MAPPO.extra_state
RESULT_STAGE = "curriculum_stage"
RESULT_TASK = "curriculum_task"
RESULT_STAGE_EPISODES = "curriculum_stage_episodes"
EPISODES_METRIC = "curriculum_episodes"  # env-runner metric: finished episodes per task


def env_overrides(cfg) -> dict:
    """Env config keys of a curriculum run (``{}`` without one): the tasks of
    all stages and the first stage as the starting task. With the default data
    the preset files are generated here, before Ray starts."""
    stages = cfg.curriculum.stages
    if not stages:
        return {}
    if cfg.env.get("tasks"):
        return {"task": stages[0].name}
    from envs.data.default import default_dataset_path

    tasks = {stage.name: str(default_dataset_path(stage.name)) for stage in stages}
    return {"data": None, "tasks": tasks, "task": stages[0].name}


def callback_class(cfg) -> type | None:
    """The :class:`CurriculumCallback` of ``cfg``'s stages, or None."""
    stages = cfg.curriculum.stages
    if not stages:
        return None
    plain = tuple(
        (
            s.name,
            int(s.episodes),
            None if s.promote_when is None else (s.promote_when.metric, s.promote_when.above, s.promote_when.below),
        )
        for s in stages
    )
    return CurriculumCallback.with_stages(plain)


# -- env side -------------------------------------------------------------------


def set_env_runner_task(env_runner, task: str) -> list[str]:
    """``set_task(task)`` on every env of ``env_runner``; returns their
    ``get_task()`` (the pending task until their next reset)."""
    tasks = []
    for env in team_envs(env_runner):
        env.set_task(task)
        tasks.append(env.get_task())
    return tasks


def env_runner_tasks(env_runner) -> list[str]:
    """``get_task()`` of every env of ``env_runner``."""
    return [env.get_task() for env in team_envs(env_runner)]


def apply_task(algorithm, task: str, *, group=None, indices=None) -> None:
    """Switch the envs of every (or only the given) training and evaluation
    env runner to ``task``."""
    fn = partial(set_env_runner_task, task=task)
    groups = [group] if group is not None else [getattr(algorithm, "env_runner_group", None), getattr(algorithm, "eval_env_runner_group", None)]
    for g in groups:
        if g is None:
            continue
        if indices is not None:
            g.foreach_env_runner(fn, local_env_runner=False, remote_worker_ids=list(indices))
        else:
            g.foreach_env_runner(fn, local_env_runner=True)


# -- the callback -----------------------------------------------------------------


class CurriculumCallback(RLlibCallback):
    """Moves the run through ``stages`` (see the module docstring). Built by
    :func:`callback_class`; ``stages`` holds ``(name, episodes, promote)``
    tuples, ``promote`` being ``(metric, above, below)`` or None."""

    stages: tuple = ()

    @classmethod
    def with_stages(cls, stages: tuple) -> type:
        return type(cls.__name__, (cls,), {"stages": tuple(stages)})

    # state, on the algorithm so that it is checkpointed with it
    def _state(self, algorithm) -> dict:
        extra = getattr(algorithm, "extra_state", None)
        if extra is None:  # not a MAPPO: keep it on the algorithm anyway
            extra = algorithm.__dict__.setdefault("_algospace_extra_state", {})
        state = extra.get(STATE_KEY)
        if state is None:
            state = extra[STATE_KEY] = {"stage": 0, "task": self.stages[0][0], "episodes": 0, "promoted_by": []}
        return state

    def _current_task(self, algorithm) -> str:
        state = self._state(algorithm)
        state["stage"] = min(int(state["stage"]), len(self.stages) - 1)
        state["task"] = self.stages[state["stage"]][0]
        return state["task"]

    # driver (trial) side
    def on_algorithm_init(self, *, algorithm, metrics_logger=None, **kwargs):
        apply_task(algorithm, self._current_task(algorithm))

    def on_extra_state_restored(self, *, algorithm, **kwargs):
        """Called by ``MAPPO.set_state`` after a checkpoint restore."""
        apply_task(algorithm, self._current_task(algorithm))

    def on_checkpoint_loaded(self, *, algorithm, **kwargs):
        apply_task(algorithm, self._current_task(algorithm))

    def on_env_runners_recreated(self, *, algorithm, env_runner_group, env_runner_indices, is_evaluation=False, **kwargs):
        apply_task(algorithm, self._current_task(algorithm), group=env_runner_group, indices=env_runner_indices)

    def on_train_result(self, *, algorithm, metrics_logger=None, result, **kwargs):
        state = self._state(algorithm)
        task = self._current_task(algorithm)
        index = state["stage"]
        name, episodes, promote = self.stages[index]
        played = (result.get("env_runners") or {}).get(EPISODES_METRIC) or {}
        state["episodes"] += int(_number(played.get(name), 0))
        reason = None
        if index < len(self.stages) - 1:
            if state["episodes"] >= episodes:
                reason = f"{state['episodes']} episodes"
            elif promote is not None:
                value = _fresh_validation(result, promote[0], name)
                metric, above, below = promote
                if value is not None and ((above is not None and value > above) or (below is not None and value < below)):
                    reason = f"{metric}={value:.4g}"
        result[RESULT_STAGE] = index
        result[RESULT_TASK] = task
        result[RESULT_STAGE_EPISODES] = state["episodes"]
        if reason is not None:
            state["promoted_by"].append(reason)
            state["stage"] = index + 1
            state["episodes"] = 0
            result["curriculum_promoted_to"] = self._current_task(algorithm)
        # Every iteration, not only on promotion: an env runner that Ray
        # restarted on its own (RLlib then sees no failure, and no
        # on_env_runners_recreated) starts on the first stage's market.
        apply_task(algorithm, self._current_task(algorithm))

    # env runner side (training and evaluation)
    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs):
        if metrics_logger is None:
            return
        try:
            task = episode.get_infos(-1).get("task")
        except (KeyError, IndexError, AttributeError):
            return
        if task is not None:
            metrics_logger.log_value((EPISODES_METRIC, str(task)), 1, reduce="sum")


def _number(value, default):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(value) else value


def _fresh_validation(result: dict, metric: str, task: str):
    """The validation metric ``val_<name>`` of this iteration's validation
    round if that round ran on ``task``'s market, else None
    (``result[metric]`` may hold an older round's value, possibly from the
    previous stage)."""
    from rllib_algospace.callbacks import VAL_PREFIX

    evaluation = (result.get("evaluation") or {}).get("env_runners") or {}
    if not evaluation or not metric.startswith(VAL_PREFIX):
        return None
    if _number((evaluation.get(EPISODES_METRIC) or {}).get(task), 0) <= 0:
        return None
    return _number(evaluation.get(metric[len(VAL_PREFIX):]), None)
