"""Live decisions from an exported bundle, without Ray or RLlib.

>>> from rllib_algospace.inference import TeamPolicy
>>> policy = TeamPolicy.load("bundle/")          # checksums verified
>>> decision = policy.on_bar({"timestamp": ..., "open": ..., "high": ..., "low": ..., "close": ..., "volume": ...})
>>> decision.target_exposure, decision.actions, decision.confidences

See ``rllib_algospace.inference.policy`` for what a decision is and how fills
are modelled, ``rllib_algospace.inference.bundle`` for the bundle format and
``rllib_algospace.export`` (``algospace export``) for making one.
"""
from rllib_algospace.inference.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    Bundle,
    BundleError,
    bundle_size,
    load_bundle,
    read_manifest,
)
from rllib_algospace.inference.policy import Decision, TeamPolicy, bar_timestamp

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "Bundle",
    "BundleError",
    "Decision",
    "TeamPolicy",
    "bar_timestamp",
    "bundle_size",
    "load_bundle",
    "read_manifest",
]
