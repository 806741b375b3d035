"""The end of a search: the table of the best trials (text, CSV,
Markdown), ``best_config.yaml`` and Optuna's plots."""
from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rllib_algospace.hpo.search_space import BEST_CONFIG, HISTORY_PNG, HpoConfig, IMPORTANCE_PNG, RECORDED_RESULT_KEYS, SearchSpec, TABLE_CSV, TABLE_MD, plain_value
from rllib_algospace.hpo.search_space import decode_params
from rllib_algospace.hpo.study import mask_url, open_study
from rllib_algospace.reports import atomic_write

logger = logging.getLogger(__name__)


@dataclass
class SearchOutcome:
    experiment_path: str
    output_dir: str
    study_name: str
    study_storage: str  # password masked
    sampler_seed: int
    worker: str
    trials_complete: int  # in the study (all workers)
    trials_failed: int
    trials_this_run: int
    errors: list[str]
    best: dict | None  # {"number", "values", "params"}
    best_config: str | None
    table_csv: str | None
    table_md: str | None
    plots: list[str]
    notes: list[str]
    interrupted: bool = False


# ---------------------------------------------------------------------------
# Tables, best config, plots
# ---------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return json.dumps(plain_value(v))
    return "" if v is None else str(v)


def _ranked(study, search: SearchSpec) -> tuple[list, set]:
    """Completed trials, best first (by the first objective), and the numbers on
    the Pareto front (multi-objective)."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values and len(t.values) == len(search.metrics)]
    sign = -1.0 if search.modes[0] == "max" else 1.0
    done.sort(key=lambda t: (sign * t.values[0], t.number))
    front = {t.number for t in study.best_trials} if search.multi_objective and done else set()
    return done, front


def best_trial(study, search: SearchSpec):
    done, front = _ranked(study, search)
    if not done:
        return None
    if search.multi_objective:
        return next(t for t in done if t.number in front)
    return done[0]


def _table(done: list, front: set, search: SearchSpec) -> tuple[list[str], list[list[str]]]:
    keys = [d.key for d in search.space]
    extra = [k for k in RECORDED_RESULT_KEYS if k not in search.metrics]
    header = ["rank", "trial", *search.metrics, *(["pareto"] if search.multi_objective else []), *keys, *extra, "worker", "sampler_seed"]
    rows = []
    encoded = set(search.encoded_keys)
    for rank, t in enumerate(done, 1):
        params = decode_params({k: t.params.get(k) for k in keys if k in t.params}, encoded)
        row = [str(rank), str(t.number), *(_fmt(v) for v in t.values)]
        if search.multi_objective:
            row.append("yes" if t.number in front else "")
        row += [_fmt(params.get(k)) for k in keys]
        row += [_fmt(t.user_attrs.get(k)) for k in extra]
        row += [_fmt(t.user_attrs.get("worker")), _fmt(t.user_attrs.get("sampler_seed"))]
        rows.append(row)
    return header, rows


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    out.write("| " + " | ".join(header) + " |\n")
    out.write("|" + "---|" * len(header) + "\n")
    for r in rows:
        out.write("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |\n")
    return out.getvalue()


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def write_best_config(hpo: HpoConfig, trial, path: str) -> str:
    """``best_config.yaml``: the base config with the trial's values, a full
    training config for ``algospace train --config``."""
    params = decode_params({d.key: trial.params[d.key] for d in hpo.search.space if d.key in trial.params}, hpo.search.encoded_keys)
    cfg = hpo.base.with_overrides(params).with_overrides({"experiment.name": f"{hpo.base.experiment.name}-best"})
    values = ", ".join(f"{m} {v:.4g}" for m, v in zip(hpo.search.metrics, trial.values))
    header = (
        f"# Best configuration of the search {hpo.search.study_name!r} (trial {trial.number}: {values}).\n"
        f"# Written by `algospace tune` from {hpo.source}; train it with:\n"
        f"#   algospace train --config {path}\n"
        + "".join(f"#   {k}: {_fmt(v)}\n" for k, v in params.items())
    )
    atomic_write(path, header + cfg.to_yaml())
    return path


def _plots(study, search: SearchSpec, out_dir: str, n_complete: int) -> tuple[list[str], list[str]]:
    import warnings

    import matplotlib
    import sys

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as ovm

    written, notes = [], []
    target = (lambda t: t.values[0]) if search.multi_objective else None
    kw = {"target": target, "target_name": search.metric} if target else {"target_name": search.metric}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if n_complete == 0:
            return [], ["plots: no completed trial yet"]
        try:
            ax = ovm.plot_optimization_history(study, **kw)
            path = os.path.join(out_dir, HISTORY_PNG)
            ax.figure.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(ax.figure)
            written.append(path)
        except Exception as exc:
            notes.append(f"optimisation history plot failed: {type(exc).__name__}: {exc}")
        if n_complete < 2:
            notes.append(f"parameter importance needs at least 2 completed trials (have {n_complete}); plot skipped")
        else:
            err = None
            for evaluator in (None, optuna.importance.PedAnovaImportanceEvaluator()):
                try:
                    ax = ovm.plot_param_importances(study, evaluator=evaluator, **kw)
                    path = os.path.join(out_dir, IMPORTANCE_PNG)
                    ax.figure.savefig(path, dpi=110, bbox_inches="tight")
                    plt.close(ax.figure)
                    written.append(path)
                    err = None
                    break
                except Exception as exc:  # e.g. sklearn missing, or a degenerate study
                    err = exc
                    plt.close("all")
            if err is not None:
                notes.append(f"parameter importance not available for this study ({type(err).__name__}: {' '.join(str(err).split())[:200]}); plot skipped")
    return written, notes


def report(hpo: HpoConfig, url: str, out_dir: str, experiment: str, *, seed: int, worker: str, trials_this_run: int = 0, errors: list[str] | None = None) -> SearchOutcome:
    """Tables, best config and plots from the study in ``url`` (every worker's trials)."""
    from optuna.trial import TrialState

    search = hpo.search
    _, study = open_study(url, search.study_name)
    done, front = _ranked(study, search)
    failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    header, rows = _table(done, front, search)
    table_csv = os.path.join(out_dir, TABLE_CSV)
    with open(table_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    table_md = os.path.join(out_dir, TABLE_MD)
    Path(table_md).write_text(f"# Best trials of {search.study_name}\n\n" + _markdown(header, rows[: search.top_k]))
    print(f"\n{len(done)} completed trial(s) in the study ({failed} failed); best {min(len(rows), search.top_k)}:")
    print(_text_table(header, rows[: search.top_k]) if rows else "(none)")
    best, best_config = None, None
    bt = best_trial(study, search)
    if bt is not None:
        best_config = write_best_config(hpo, bt, os.path.join(out_dir, BEST_CONFIG))
        params = decode_params({k: v for k, v in bt.params.items()}, search.encoded_keys)
        best = {"number": bt.number, "values": dict(zip(search.metrics, bt.values)), "params": params, "worker": bt.user_attrs.get("worker")}
        print(f"best trial {bt.number}: " + ", ".join(f"{m} {v:.4g}" for m, v in zip(search.metrics, bt.values)))
        print(f"best config: {best_config} (train it with: algospace train --config {best_config})")
    plots, notes = _plots(study, search, out_dir, len(done))
    for note in notes:
        print(note)
    print(f"tables: {table_csv}, {table_md}" + (f"; plots: {', '.join(plots)}" if plots else ""))
    return SearchOutcome(
        experiment_path=experiment,
        output_dir=out_dir,
        study_name=search.study_name,
        study_storage=mask_url(url),
        sampler_seed=seed,
        worker=worker,
        trials_complete=len(done),
        trials_failed=failed,
        trials_this_run=trials_this_run,
        errors=list(errors or []),
        best=best,
        best_config=best_config,
        table_csv=table_csv,
        table_md=table_md,
        plots=plots,
        notes=notes,
    )
