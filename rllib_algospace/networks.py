"""The networks of the team's agents, in plain torch (no Ray): the per-agent
actor, shared by the RLModule (``mappo.modules.TeamModule``), behaviour
cloning (``teacher``) and the teacher term of the learner."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["ACTIVATIONS", "Actor", "InputScaling", "SCALED_CLIP", "mlp"]

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
# Scaled inputs are clipped here: a value far outside what the train split
# showed (a new market, a shock) cannot saturate every unit of the network.
SCALED_CLIP = 10.0


class InputScaling(nn.Module):
    """``clip((x - shift) / scale)``, with fixed (not trained) ``shift`` and
    ``scale`` buffers that travel in the module's state (checkpoints, warm
    starts, exported bundles). Identity until ``set`` is called. The values
    come from the training market file's train split
    (``envs.market.env.team_input_scaling``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    def set(self, shift, scale) -> "InputScaling":
        shift = torch.as_tensor(np.asarray(shift, dtype=np.float32))
        scale = torch.as_tensor(np.asarray(scale, dtype=np.float32))
        if shift.shape != self.shift.shape or scale.shape != self.scale.shape:
            raise ValueError(f"input scaling of {tuple(shift.shape)}/{tuple(scale.shape)} values for an input of {self.shift.shape[0]}")
        if not (torch.isfinite(shift).all() and torch.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("input scaling needs finite shifts and positive finite scales")
        self.shift.copy_(shift)
        self.scale.copy_(scale)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.shift) / self.scale).clamp(-SCALED_CLIP, SCALED_CLIP)


def mlp(in_dim: int, hiddens, out_dim: int, activation: str = "tanh", out_gain: float = 1.0) -> nn.Sequential:
    act = ACTIVATIONS[activation]
    layers, d = [], in_dim
    for h in hiddens:
        lin = nn.Linear(d, h)
        nn.init.orthogonal_(lin.weight, np.sqrt(2))
        nn.init.zeros_(lin.bias)
        layers += [lin, act()]
        d = h
    out = nn.Linear(d, out_dim)
    nn.init.orthogonal_(out.weight, out_gain)
    nn.init.zeros_(out.bias)
    layers.append(out)
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """One agent's policy: its own (raw) observation -> ``scale_in`` -> the
    MLP ``pi`` -> logits. Export traces the whole actor, scaling included."""

    def __init__(self, obs_dim: int, num_actions: int, hiddens, activation: str, scaling=None):
        super().__init__()
        self.scale_in = InputScaling(obs_dim)
        if scaling is not None:
            self.scale_in.set(*scaling)
        self.pi = mlp(obs_dim, hiddens, num_actions, activation, out_gain=0.01)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.pi(self.scale_in(obs))
