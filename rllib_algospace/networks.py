"""The networks of the team's agents, in plain torch (no Ray): the per-agent
actor, shared by the RLModule (``mappo.modules.TeamModule``), behaviour
cloning (``teacher``) and the teacher term of the learner."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["ACTIVATIONS", "Actor", "mlp"]

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


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
    """One agent's policy: its own observation -> logits (``pi`` is what export traces)."""

    def __init__(self, obs_dim: int, num_actions: int, hiddens, activation: str):
        super().__init__()
        self.pi = mlp(obs_dim, hiddens, num_actions, activation, out_gain=0.01)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.pi(obs)
