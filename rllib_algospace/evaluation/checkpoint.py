"""``algospace evaluate``: a trained team against buy-and-hold, flat and the rule
baseline on the same bars, with a JSON report and a PNG of equity, drawdown
and position."""
from __future__ import annotations

import os
from pathlib import Path

from rllib_algospace.evaluation.runner import SUMMARY_KEYS, format_comparison
from rllib_algospace.checkpoints import ModuleTeamPolicy, checkpoint_data, checkpoint_env_overrides, checkpoint_metadata, find_checkpoint

__all__ = ["SUMMARY_KEYS", "evaluate_checkpoint", "format_comparison", "format_intervals"]


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    *,
    data: str | None = None,
    split: str = "test",
    episodes: int | None = None,
    full_split: bool = False,
    episode_length: int = 1024,
    out: str | os.PathLike | None = None,
    seed: int = 0,
    stress: bool = False,
    fresh_markets: int = 0,
    fresh_seed: int | None = None,
    progress=print,
) -> dict:
    """Evaluate the team of ``checkpoint`` greedily on ``split`` of the data it
    was trained on (or of ``data``); returns the results and the report paths.
    ``stress=True`` adds the stress tests and the regime adaptability
    (``rllib_algospace.evaluation.stress``) to the report: keys ``stress`` and
    ``regime_adaptability`` in the JSON, plus stress.md/.html/.png.

    Every report has ``intervals`` (per policy: Sharpe from daily returns and
    per bar, each with its block-bootstrap 95% interval, drawdown, win rate,
    consensus, trades) and ``targets_met`` for the split. ``fresh_markets=N``
    also runs the team and the baselines on N newly generated markets of the
    training data's preset (``rllib_algospace.evaluation.fresh``; seeds from
    ``fresh_seed``, never one training used): key ``fresh_markets`` and
    ``targets_met["fresh_markets"]``."""
    from rllib_algospace.ensemble_policy import evaluate_ensemble, find_manifest
    from rllib_algospace.evaluation import evaluate_with_baselines, write_report

    from rllib_algospace.evaluation.fresh import DEFAULT_FRESH_SEED, FreshMarketError, evaluate_fresh_markets, policy_series_metrics, targets_met

    manifest = find_manifest(checkpoint)
    if manifest is not None and fresh_markets:
        raise FreshMarketError(f"{checkpoint}: --fresh-markets evaluates one checkpoint; give a member's checkpoint, not an ensemble")
    if manifest is not None:  # an ensemble: its members and the ensemble side by side
        report = evaluate_ensemble(manifest, data=data, split=split, episodes=episodes, full_split=full_split, episode_length=episode_length, out=out, seed=seed)
        if stress:
            from rllib_algospace.evaluation.stress import add_ensemble_stress_section

            report.update(add_ensemble_stress_section(manifest, report, seed=seed))
        return report
    checkpoint = find_checkpoint(checkpoint)
    meta = checkpoint_metadata(checkpoint)
    env_config = meta.get("env_config", {})
    data = checkpoint_data(meta, data)
    overrides = checkpoint_env_overrides(env_config)
    policy = ModuleTeamPolicy.from_checkpoint(checkpoint)
    if not full_split and episodes is None:
        full_split = True  # the default: one pass over the whole split
    results = evaluate_with_baselines(
        policy,
        data=data,
        split=split,
        episodes=episodes,
        full_split=full_split,
        episode_length=episode_length,
        seed=seed,
        env_overrides=overrides,
    )
    intervals = policy_series_metrics(results.runs, seed=seed)
    met = {split: targets_met(intervals["team"])}
    extra = {"intervals": intervals, "targets_met": met}
    if fresh_markets:
        fresh = evaluate_fresh_markets(policy, env_config=env_config, n=fresh_markets, first_seed=DEFAULT_FRESH_SEED if fresh_seed is None else fresh_seed, env_overrides=overrides, seed=seed, progress=progress)
        met["fresh_markets"] = fresh["targets_met"]
        extra["fresh_markets"] = fresh
    out_dir = Path(out) if out else checkpoint / f"evaluation_{split}"
    json_path, png_path = write_report(results, results.runs["team"], out_dir, extra=extra)
    from rllib_algospace.evaluation.tearsheet import write_tear_sheet

    sheet = write_tear_sheet(results.runs["team"], results.runs["buy_and_hold"], out_dir, title=f"{Path(str(checkpoint)).name} on the {split} split of {Path(str(data)).name if data else 'its data'}")
    report = {"checkpoint": str(checkpoint), "data": data, "split": split, "results": dict(results), **extra, "json": str(json_path), "png": str(png_path), "tear_sheet": str(sheet)}
    if stress:
        from rllib_algospace.evaluation.stress import add_stress_section

        report.update(add_stress_section(policy, results.runs["team"], out_dir, data=data, split=split, env_overrides=overrides, seed=seed, json_path=json_path))
    return report


def format_intervals(report: dict) -> str:
    """Daily and per-bar Sharpe with intervals and the targets, for the split
    and (when run) the fresh markets."""
    from rllib_algospace.evaluation.fresh import format_fresh_summary

    parts = [format_fresh_summary(f"{report['split']} split: Sharpe from daily and from per-bar returns, 95% block-bootstrap intervals", report["intervals"], report["targets_met"][report["split"]])]
    fresh = report.get("fresh_markets")
    if fresh:
        seeds = ", ".join(str(s) for s in fresh["seeds"])
        parts.append(format_fresh_summary(f"{len(fresh['seeds'])} fresh {fresh['preset']} markets (seeds {seeds}; training used {', '.join(map(str, fresh['training_seeds']))}), {fresh['bars']:,} bars each, start to end", fresh["pooled"], fresh["targets_met"]))
    return "\n\n".join(parts)
