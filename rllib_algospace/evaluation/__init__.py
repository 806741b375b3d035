"""Greedy evaluation of a team policy against fixed baselines (numpy only; no Ray, no torch).

>>> from rllib_algospace.evaluation import evaluate_with_baselines, run_policy, write_report
>>> from rllib_algospace.policies import rule_policy
>>> run = run_policy(rule_policy, split="test", full_split=True)
>>> results = evaluate_with_baselines(rule_policy, split="test", full_split=True)
>>> write_report(results, results.runs["team"], "out/")

See ``rllib_algospace.evaluation.runner`` for the conventions (per-step
arrays, chained metrics over several episodes, consensus rate, per-regime
results).
"""
from rllib_algospace.evaluation.runner import (
    BASELINES,
    Comparison,
    EvaluationRun,
    evaluate_with_baselines,
    json_safe,
    per_regime_metrics,
    run_policy,
    write_report,
)

__all__ = [
    "BASELINES",
    "Comparison",
    "EvaluationRun",
    "evaluate_with_baselines",
    "json_safe",
    "per_regime_metrics",
    "run_policy",
    "write_report",
]
