"""Value normalisation and the clipped, masked value loss (torch only, no Ray).

The MAPPO paper found normalising value targets by a running mean and standard
deviation load-bearing. ``ValueNormalizer`` keeps exponential moving averages
of the targets and of their squares (debiased, as in the paper's ValueNorm),
one per critic output column; its statistics are buffers, so they are saved
and restored with the critic and never touched by the optimizer.
"""
from __future__ import annotations

import torch
from torch import nn


class ValueNormalizer(nn.Module):
    def __init__(self, columns: int, beta: float = 0.995, enabled: bool = True, min_var: float = 1e-4):
        super().__init__()
        self.enabled = enabled
        self.beta = beta
        self.min_var = min_var
        self.register_buffer("mean_ema", torch.zeros(columns))
        self.register_buffer("sq_ema", torch.zeros(columns))
        self.register_buffer("debias", torch.tensor(0.0))

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        if float(self.debias) < 1e-6:  # no statistics yet: identity
            return torch.zeros_like(self.mean_ema), torch.ones_like(self.sq_ema)
        mean = self.mean_ema / self.debias
        var = (self.sq_ema / self.debias - mean**2).clamp_min(self.min_var)
        return mean, torch.sqrt(var)

    @torch.no_grad()
    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return values
        mean, std = self.mean_std()
        return (values - mean) / std

    @torch.no_grad()
    def denormalize(self, values: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return values
        mean, std = self.mean_std()
        return values * std + mean

    @torch.no_grad()
    def update(self, total: torch.Tensor, total_sq: torch.Tensor, count) -> None:
        """Fold in a batch given by its per-column sums, so that several
        learners can all-reduce the sums first and stay identical."""
        if not self.enabled or float(count) <= 0:
            return
        b = self.beta
        self.mean_ema.mul_(b).add_((1 - b) * total / count)
        self.sq_ema.mul_(b).add_((1 - b) * total_sq / count)
        self.debias.mul_(b).add_(1 - b)


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, clip: float | None) -> torch.Tensor:
    """PPO-style clipped value loss, averaged over the rows where ``mask`` is set.

    ``values``, ``old_values`` and ``targets`` are ``(B, n)`` in normalised
    space; the prediction may move at most ``clip`` from the value it had when
    the batch was collected, and the larger of the clipped and unclipped
    squared errors counts (pessimistic, as in PPO's policy loss).
    """
    err = (values - targets) ** 2
    if clip:
        clipped = old_values + torch.clamp(values - old_values, -clip, clip)
        err = torch.maximum(err, (clipped - targets) ** 2)
    per_row = err.mean(-1)
    mask = mask.bool()
    return (per_row * mask).sum() / mask.sum().clamp_min(1)
