"""Feature pipeline: regime, structure and tactical matrices from two bar series.

``compute_features(base, htf)`` turns base bars and the higher-timeframe bars
aggregated from them (``envs.data.bars.aggregate_bars``) into three float32
matrices, one row per bar of their timeframe:

* regime (HTF, 12 columns, ``REGIME_FEATURES``; see ``envs.features.regime``),
* structure (HTF, 8 columns, ``STRUCTURE_FEATURES``; ``envs.features.structure``),
* tactical (base, 7 columns, ``TACTICAL_FEATURES``; ``envs.features.tactical``).

Row ``i`` of each matrix depends only on bars ``<= i`` of its own timeframe, so
at base bar ``t`` an observation may use tactical rows ``<= t`` and HTF rows
``< htf_visible_count(base, htf)[t]``. Rows before a matrix's warmup are 0.
Every value is finite and lies in ``[-FEATURE_CLIP, FEATURE_CLIP]``. Features
are scale-free (log returns, ratios, volatility-normalised distances), so the
same code serves a 1.2 FX price and a 40,000 BTC price at any bar frequency.

The observation windows (rows per matrix the agents see) are
``REGIME_WINDOW``, ``STRUCTURE_WINDOW`` and ``TACTICAL_WINDOW``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.data.bars import Bars
from envs.features.regime import REGIME_FEATURES, REGIME_WARMUP, regime_features
from envs.features.rolling import FEATURE_CLIP
from envs.features.structure import STRUCTURE_FEATURES, STRUCTURE_WARMUP, structure_features
from envs.features.tactical import TACTICAL_FEATURES, TACTICAL_WARMUP, tactical_features

REGIME_WINDOW = 96
STRUCTURE_WINDOW = 48
TACTICAL_WINDOW = 60

__all__ = [
    "FEATURE_CLIP",
    "FeatureSet",
    "REGIME_FEATURES",
    "REGIME_WARMUP",
    "REGIME_WINDOW",
    "STRUCTURE_FEATURES",
    "STRUCTURE_WARMUP",
    "STRUCTURE_WINDOW",
    "TACTICAL_FEATURES",
    "TACTICAL_WARMUP",
    "TACTICAL_WINDOW",
    "compute_features",
    "regime_features",
    "structure_features",
    "tactical_features",
]


@dataclass(frozen=True)
class FeatureSet:
    """The three feature matrices of one bar series and their warmups.

    ``regime`` is ``(n_htf, 12)``, ``structure`` ``(n_htf, 8)`` (one row per
    HTF bar), ``tactical`` ``(n_base, 7)`` (one row per base bar), all float32.
    ``*_warmup`` is the first row whose features are fully defined (earlier
    rows are 0).
    """

    regime: np.ndarray
    structure: np.ndarray
    tactical: np.ndarray
    regime_warmup: int
    structure_warmup: int
    tactical_warmup: int


def compute_features(base: Bars, htf: Bars, progress=None) -> FeatureSet:
    """Compute every feature matrix of ``base`` and its higher timeframe ``htf``
    (normally ``aggregate_bars(base, htf_multiple)``). Vectorised and
    processed in bounded-memory blocks; no look-ahead. ``progress`` is called
    with "regime features", "structure features" and "tactical features"."""
    step = progress or (lambda stage: None)
    step("regime features")
    regime, rw = regime_features(htf)
    step("structure features")
    structure, sw = structure_features(htf)
    step("tactical features")
    tactical, tw = tactical_features(base)
    return FeatureSet(
        regime=regime,
        structure=structure,
        tactical=tactical,
        regime_warmup=int(rw),
        structure_warmup=int(sw),
        tactical_warmup=int(tw),
    )
