"""The bundle's ``MODEL_CARD.md``: what a person reads before trusting a
bundle (data, training, test and fresh-market results of each member,
limitations), written by ``export`` from the manifest and the members'
checkpoints and evaluations."""
from __future__ import annotations

import json
from pathlib import Path

MODEL_CARD_FILE = "MODEL_CARD.md"


def _fmt(v, kind: str = "num") -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "n/a"
    if kind == "pct":
        return f"{v:.1%}"
    if kind == "int":
        return f"{int(v):,}"
    return f"{v:+.2f}"


def _metrics_rows(results: dict) -> list[str]:
    rows = ["| policy | Sharpe (daily) [95% CI] | Sharpe (per bar) | max drawdown | win rate | consensus | trades |", "|---|---|---|---|---|---|---|"]
    for name, m in results.items():
        lo, hi = (m.get("sharpe_daily_ci95") or [None, None])[:2]
        rows.append(f"| {name} | {_fmt(m.get('sharpe_daily'))} [{_fmt(lo)}, {_fmt(hi)}] | {_fmt(m.get('sharpe_per_bar'))} | {_fmt(m.get('max_drawdown'), 'pct')} | "
                    f"{_fmt(m.get('win_rate'), 'pct')} | {_fmt(m.get('consensus_rate'), 'pct')} | {_fmt(m.get('trades'), 'int')} |")
    return rows


def model_card(manifest: dict, members: list[dict]) -> str:
    """``MODEL_CARD.md``: what the bundle is, what it was trained on and how,
    how it did on the test split and on fresh markets (when the checkpoint
    was evaluated before export), and its limitations."""
    from rllib_algospace.checkpoints import RUN_FILE

    lines = [f"# Model card: {Path(manifest['source']['path']).name}", ""]
    lines += [f"Exported {manifest['created']} from {manifest['source']['kind']} `{manifest['source']['path']}`: "
              f"{len(members)} member(s), {manifest['precision']} TorchScript actors, actions schema `{manifest['actions_schema']}`.", ""]
    data = manifest.get("data") or {}
    lines += ["## Data", "", f"- file: `{data.get('path')}` (source `{data.get('source')}`, schema v{data.get('schema_version')})",
              f"- bars: {manifest['features'].get('base_freq_seconds')} s base bars, higher timeframe x{manifest['features'].get('htf_multiple')}; "
              f"about {manifest['features'].get('bars_per_year', 0):,.0f} bars a year", ""]
    lines += ["## Training", ""]
    for m in members:
        meta = m.get("meta") or {}
        record = None
        for folder in list(Path(m["checkpoint"]).parents)[:3]:
            if (folder / RUN_FILE).is_file():
                try:
                    record = json.loads((folder / RUN_FILE).read_text())
                except (OSError, ValueError):
                    record = None
                break
        lines.append(f"- `{m['name']}`: {meta.get('algorithm')} checkpoint at iteration {meta.get('training_iteration')} (`{m['checkpoint']}`)")
        if record:
            cfg = record.get("config", {})
            tr, algo = cfg.get("training", {}), cfg.get("algorithm", {})
            lines.append(f"  - rllib-algospace {record.get('version')}, git commit {record.get('git_commit') or 'n/a'}{' (uncommitted changes)' if record.get('git_dirty') else ''}; "
                         + ", ".join(f"{k} {v}" for k, v in (record.get("libraries") or {}).items() if v))
            lines.append(f"  - warm start: {tr.get('warm_start') or 'none (from scratch)'}; lr {algo.get('lr')}, batch {algo.get('train_batch_size')}, "
                         f"actors {algo.get('actor_hiddens')}, teacher KL {algo.get('teacher_kl_coeff')} over {algo.get('teacher_kl_steps')} steps; "
                         f"stop {cfg.get('experiment', {}).get('stop')}")
        else:
            lines.append("  - no run record (`algospace_run.json`) beside the checkpoint: training settings unknown")
    lines.append("")
    lines += ["## Results", ""]
    shown = False
    for m in members:
        for path in sorted(Path(m["checkpoint"]).glob("evaluation_*/evaluation.json")):
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            shown = True
            split = path.parent.name.removeprefix("evaluation_")
            lines += [f"`{m['name']}` on the whole `{split}` split (`{path}`):", ""] + _metrics_rows(doc.get("intervals") or {}) + [""]
            fresh = doc.get("fresh_markets")
            if fresh:
                lines += [f"On {len(fresh['seeds'])} fresh {fresh['preset']} markets (seeds {', '.join(map(str, fresh['seeds']))}; never seen in training), start to end:", ""]
                lines += _metrics_rows(fresh.get("pooled") or {}) + [""]
                met = fresh.get("targets_met") or {}
                lines += ["Targets on fresh markets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in met.items()), ""]
    if not shown:
        lines += ["Not evaluated before export. Run `algospace evaluate CHECKPOINT --fresh-markets 5`, then export again to have the figures here.", ""]
    lines += [
        "## Limitations",
        "",
        "- Trained and tested on one market file's history (and, where shown, synthetic markets of the same generator): "
        "figures from a six-week test split carry wide intervals; nothing here says how the team does on another market.",
        "- Costs are modelled as commission and slippage in basis points of the traded notional; fills at the next bar's open. "
        "Spreads, market impact, funding and outages are not modelled.",
        "- The live path expects bars of the training data's length and features computed exactly as in training; "
        f"trading settings: {manifest['trading']}.",
        "- The bundle decides; it does not place orders. Watch it before you trust it.",
        "",
    ]
    return "\n".join(lines)
