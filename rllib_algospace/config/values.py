"""Configuration building blocks: the error type, value kinds (checked
strictly: ``true`` is not an integer), durations, paths, and the context that
collects every problem of a file before reporting them together. No Ray, no
torch, nothing of the package."""
from __future__ import annotations

import difflib
import math
import os
import re
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterable, Mapping

from envs.market.trading import AGENTS


# Kept in step with envs.data.default.PRESET_NAMES (checked by the tests); not
# imported from there because that pulls in numpy and h5py.
DATA_PRESETS = ("simple_markets", "moderate_volatility", "complex_regimes")
SPLITS = ("train", "val", "test")
CRITIC_INPUTS = ("state", "concat_obs")
ACTIVATIONS = ("tanh", "relu")
SCORE_MODES = ("max", "min")
# The team's roles (envs.market.trading.AGENTS: a light module, no numpy).
AGENT_NAMES = AGENTS
FROZEN_POLICIES = ("checkpoint", "rule")
# Kept in step with rllib_algospace.callbacks.TRADING_METRICS (checked by
# tests/test_curriculum.py); not imported from there because that pulls in Ray.
VALIDATION_METRICS = tuple(
    f"val_{m}" for m in ("sharpe", "total_return", "max_drawdown", "win_rate", "profit_factor", "trades", "exposure", "consensus_rate", "regime_accuracy")
)
# The env keys that the trainer sets itself (data.path, the split of each phase).
ENV_EXCLUDED_KEYS = {
    "data": "use data.path instead",
    "split": "the trainer sets it (train for training, evaluation.split for validation)",
    "render_mode": "rendering is not available in training",
}
# Tune result key of the env steps sampled so far (RLlib new API stack:
# f"{ENV_RUNNER_RESULTS}/{NUM_ENV_STEPS_SAMPLED_LIFETIME}").
TIMESTEPS_RESULT_KEY = "env_runners/num_env_steps_sampled_lifetime"
OVERRIDES_SOURCE = "overrides"
DEFAULTS_SOURCE = "<defaults>"


class ConfigError(ValueError):
    """A bad experiment configuration; ``str(exc)`` is one line per problem:
    ``FILE: KEY: PROBLEM`` (``errors`` lists them when there are several)."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None, errors: list["ConfigError"] | None = None):
        self.errors: list[ConfigError] = list(errors or [])
        if self.errors:  # several problems: one line each
            message = "\n".join(str(e) for e in self.errors)
        else:
            message = " ".join(str(message).split())
        super().__init__(message)
        self.source = source
        self.key = key


def short_repr(value: Any, limit: int = 60) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


# ---------------------------------------------------------------------------
# Value kinds: each checks (and converts) one value, or calls fail(problem).
# ---------------------------------------------------------------------------
Fail = Callable[[str], Any]


def _range_text(lo, hi, lo_open, hi_open) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    return f"{'<' if hi_open else '<='} {hi}"


def _check_range(v, fail: Fail, lo, hi, lo_open, hi_open) -> None:
    bad = (lo is not None and (v <= lo if lo_open else v < lo)) or (hi is not None and (v >= hi if hi_open else v > hi))
    if bad:
        fail(f"must be {_range_text(lo, hi, lo_open, hi_open)}, got {short_repr(v)}")


class Kind(ABC):
    """A value kind: checks and converts one config value."""

    optional = False

    def __call__(self, v: Any, fail: Fail) -> Any:
        if v is None:
            if self.optional:
                return None
            fail(f"expected {self.expected()}, got null")
        return self.convert(v, fail)

    @abstractmethod
    def expected(self) -> str:
        """What a valid value looks like, for error messages."""

    @abstractmethod
    def convert(self, v: Any, fail: Fail) -> Any:
        """The checked value, or ``fail(problem)``."""

    def _type_error(self, v: Any, fail: Fail):
        fail(f"expected {self.expected()}{' or null' if self.optional else ''}, got {short_repr(v)}")


class Int(Kind):
    def __init__(self, lo=None, hi=None, optional=False, hint=""):
        self.lo, self.hi, self.optional, self.hint = lo, hi, optional, hint

    def expected(self):
        return "an integer"

    def convert(self, v, fail):
        if not is_int(v):
            self._type_error(v, fail)
        bad = (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi)
        if bad:
            fail(f"must be {_range_text(self.lo, self.hi, False, False)}, got {short_repr(v)}{self.hint}")
        return int(v)


class Float(Kind):
    def __init__(self, lo=None, hi=None, lo_open=False, hi_open=False, optional=False):
        self.lo, self.hi, self.lo_open, self.hi_open, self.optional = lo, hi, lo_open, hi_open, optional

    def expected(self):
        return "a number"

    def convert(self, v, fail):
        if not is_number(v):
            self._type_error(v, fail)
        _check_range(v, fail, self.lo, self.hi, self.lo_open, self.hi_open)
        return float(v)


class Bool(Kind):
    def __init__(self, optional=False):
        self.optional = optional

    def expected(self):
        return "true or false"

    def convert(self, v, fail):
        if not isinstance(v, bool):
            self._type_error(v, fail)
        return v


class Str(Kind):
    def __init__(self, choices: Iterable[str] | None = None, optional=False, check: Callable[[str], str | None] | None = None):
        self.choices = tuple(choices) if choices is not None else None
        self.optional, self.check = optional, check

    def expected(self):
        return "a string"

    def convert(self, v, fail):
        if not isinstance(v, str):
            if self.choices is not None:
                fail(f"must be one of {', '.join(self.choices)}{', or null' if self.optional else ''}, got {short_repr(v)}")
            self._type_error(v, fail)
        if self.choices is not None and v not in self.choices:
            near = difflib.get_close_matches(v, self.choices, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            fail(f"must be one of {', '.join(self.choices)}, got {short_repr(v)}{hint}")
        if self.choices is None and not v.strip():
            fail("must not be empty")
        if self.check is not None:
            problem = self.check(v)
            if problem:
                fail(problem)
        return v


class AutoOr(Kind):
    """``"auto"`` or a number (``integer=True``: an integer) >= ``lo``."""

    def __init__(self, lo=0, integer=True):
        self.lo, self.integer = lo, integer

    def expected(self):
        return f"'auto' or {'an integer' if self.integer else 'a number'} >= {self.lo}"

    def convert(self, v, fail):
        if v == "auto":
            return "auto"
        ok = is_int(v) if self.integer else is_number(v)
        if not ok or v < self.lo:
            fail(f"expected {self.expected()}, got {short_repr(v)}")
        return int(v) if self.integer else float(v)


class Hiddens(Kind):
    def expected(self):
        return "a non-empty list of positive integers"

    def convert(self, v, fail):
        if not isinstance(v, (list, tuple)) or not v or not all(is_int(x) and x > 0 for x in v):
            fail(f"expected {self.expected()}, got {short_repr(v)}")
        return tuple(int(x) for x in v)


class Duration(Kind):
    def __init__(self, optional=True):
        self.optional = optional

    def expected(self):
        return "a duration"

    def convert(self, v, fail):
        return _duration(v, fail)


class StrMap(Kind):
    def __init__(self, optional=False):
        self.optional = optional

    def expected(self):
        return "a mapping of names to strings"

    def convert(self, v, fail):
        if not isinstance(v, Mapping) or not all(isinstance(k, str) and isinstance(x, str) and x.strip() for k, x in v.items()):
            self._type_error(v, fail)
        return dict(v)


# ---------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------
_NUM = r"(\d+(?:\.\d*)?|\.\d+)"
_DURATION_RE = re.compile(rf"^(?:{_NUM}d)?(?:{_NUM}h)?(?:{_NUM}(?:m|min))?(?:{_NUM}s)?$")
_DURATION_HELP = "use e.g. 23h30m, 90m, 45s, 1.5h or a number of seconds"


def _duration(value: Any, fail: Fail) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        fail(f"expected a duration ({_DURATION_HELP}), got {short_repr(value)}")
    if isinstance(value, str):
        text = "".join(value.split()).lower()
        try:
            seconds = float(text)
        except ValueError:
            m = _DURATION_RE.match(text)
            if not text or m is None or not any(m.groups()):
                if text.startswith("-"):
                    fail(f"must be > 0, got {short_repr(value)}")
                fail(f"invalid duration {short_repr(value)} ({_DURATION_HELP})")
            d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
            seconds = ((d * 24 + h) * 60 + mi) * 60 + s
    else:
        seconds = float(value)
    if not math.isfinite(seconds):
        fail(f"invalid duration {short_repr(value)} ({_DURATION_HELP})")
    if seconds <= 0:
        fail(f"must be > 0, got {short_repr(value)}")
    return float(seconds)


def parse_duration(value: Any, key: str = "experiment.stop.time_budget", source: str | None = None) -> float:
    """``"23h30m"`` -> ``84600.0`` seconds; also ``"1h"``, ``"90m"``, ``"45s"``,
    ``"1h30m15s"``, ``"1.5h"``, ``"2d"``, and plain numbers (seconds).

    Zero, negative and unreadable values raise :class:`ConfigError` naming ``key``.
    """

    def fail(problem: str):
        prefix = f"{source}: " if source else ""
        raise ConfigError(f"{prefix}{key}: {problem}", source=source, key=key)

    return _duration(value, fail)


# ---------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------
_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def is_uri(path: str) -> bool:
    """``s3://bucket/x``, ``gs://...``, ``file:///...`` are URIs; ``C:\\x`` and ``~/x`` are not."""
    return bool(_URI_RE.match(path))


def normalize_local_path(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def normalize_storage_path(path: str) -> str:
    return path if is_uri(path) else normalize_local_path(path)


def check_experiment_name(name: str) -> str | None:
    if "/" in name or "\\" in name or name in (".", ".."):
        return f"must be a plain folder name (no path separators), got {short_repr(name)}"
    return None


TEACHER_NAMES = ("rule", "oracle")


def check_warm_start(value: str) -> str | None:
    if value in TEACHER_NAMES:
        return None
    if is_uri(value):
        return f"must be rule, oracle or a local warm-start file, got {short_repr(value)}"
    if not value.endswith(".pt"):
        near = difflib.get_close_matches(value, TEACHER_NAMES, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        return f"must be rule, oracle or a warm-start file (.pt, from `algospace pretrain`), got {short_repr(value)}{hint}"
    return None


def check_local_file_name(path: str) -> str | None:
    if is_uri(path):
        return f"must be a local file (URIs are not supported), got {short_repr(path)}"
    return None


class ConfigContext:
    """Where errors come from: the file, or ``overrides`` for overridden keys."""

    def __init__(self, source: str, overridden: Iterable[str] = ()):
        self.source = source
        self.overridden = set(overridden)
        self.errors: list[ConfigError] = []  # every problem found, reported together (raise_errors)

    def attempt(self, fn, *args):
        """``fn(*args)``, recording a ``ConfigError`` instead of raising it;
        returns ``FAILED`` then, so the caller can go on to the next key."""
        try:
            return fn(*args)
        except ConfigError as exc:
            self.errors.append(exc)
            return FAILED

    def raise_errors(self) -> None:
        """One ``ConfigError`` with every problem found, one line each."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            first = self.errors[0]
            raise ConfigError("", source=first.source, key=first.key, errors=self.errors)

    def source_of(self, key: str) -> str:
        for o in self.overridden:
            if key == o or key.startswith((o + ".", o + "[")) or o.startswith(key + "."):
                return OVERRIDES_SOURCE
        return self.source

    def fail(self, key: str, problem: str):
        src = self.source_of(key)
        raise ConfigError(f"{src}: {key}: {problem}", source=src, key=key)

    def cross(self, keys: list[str], message: str):
        src = next((OVERRIDES_SOURCE for k in keys if self.source_of(k) == OVERRIDES_SOURCE), self.source)
        raise ConfigError(f"{src}: {message}", source=src, key=keys[0])

    sort_known = True  # list known keys sorted (False: in the order given)

    def unknown(self, key: str, name: str, known: Iterable[str]):
        known = sorted(known) if self.sort_known else list(known)
        near = difflib.get_close_matches(name, known, n=1) if isinstance(name, str) else []
        hint = f"did you mean {near[0]}?" if near else f"known keys: {', '.join(known)}"
        src = self.source_of(key)
        raise ConfigError(f"{src}: unknown key {key} ({hint})", source=src, key=key)


FAILED = object()  # a key whose value was refused (its error is in the context)


def join_key(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def as_mapping(raw: Any, key: str, ctx: ConfigContext) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        ctx.fail(key, f"expected a mapping, got {short_repr(raw)}")
    for k in raw:
        if not isinstance(k, str):
            ctx.fail(key, f"keys must be strings, got {short_repr(k)}")
    return dict(raw)
