"""Halve the minibatch on a CUDA out-of-memory error instead of ending the run.

A 24-hour run should not die because one minibatch did not fit. When the
learner's update of a minibatch raises ``torch.OutOfMemoryError``, the
minibatch is split in two and each half is updated in turn; later minibatches
are split the same way (the plan's adaptive batch size), down to
``MIN_ROWS`` rows, below which the error is raised after all.
"""
from __future__ import annotations

import logging

import torch
import tree

logger = logging.getLogger(__name__)

MIN_ROWS = 8


def split_module_batches(batch: dict, parts: int) -> list[dict]:
    """Split every module's batch (nested dicts of tensors) into ``parts`` row chunks."""
    chunks = [dict() for _ in range(parts)]
    for module_id, module_batch in batch.items():
        rows = _rows(module_batch)
        bounds = [round(i * rows / parts) for i in range(parts + 1)]
        for i in range(parts):
            lo, hi = bounds[i], bounds[i + 1]
            chunks[i][module_id] = tree.map_structure(lambda x, lo=lo, hi=hi: x[lo:hi], module_batch)
    return chunks


def _rows(module_batch) -> int:
    return int(tree.flatten(module_batch)[0].shape[0])


class OomSplitting:
    """Mixin for a TorchLearner: wraps ``_update`` with the split-and-retry rule."""

    _oom_parts: int = 1

    def _update(self, batch):
        while True:
            try:
                if self._oom_parts == 1:
                    return super()._update(batch)
                result = None
                for chunk in split_module_batches(batch, self._oom_parts):
                    result = super()._update(chunk)
                return result
            except torch.OutOfMemoryError:
                smallest = min(_rows(b) for b in batch.values()) // (self._oom_parts * 2)
                if smallest < MIN_ROWS:
                    raise
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                self._oom_parts *= 2
                logger.warning(
                    "CUDA out of memory in the learner: splitting each minibatch into %d parts (about %d rows each) and retrying",
                    self._oom_parts,
                    smallest,
                )
