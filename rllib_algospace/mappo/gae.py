"""Generalised advantage estimation on one episode chunk (numpy only, no Ray).

The connector in ``connectors.py`` feeds it the shared critic's values for every
agent at once; the unit tests compare it with a textbook GAE.
"""
from __future__ import annotations

import numpy as np


def gae_per_episode(values, rewards, terminateds, truncateds, gamma: float, lambda_: float):
    """GAE over one episode chunk whose last row is RLlib's bootstrap row.

    All inputs are ``(L, n)`` arrays (``n`` agents, or 1). Row ``L - 1`` is the
    extra timestep RLlib appends to every chunk (its loss mask is off); its value
    is the bootstrap value ``V(s_L)``. A terminated row does not bootstrap; a
    truncated row stops the advantage recursion but keeps ``V(s_{t+1})``.
    Returns ``(advantages, value_targets)``, both float32 ``(L, n)``.
    """
    values = np.asarray(values, dtype=np.float64)
    length = values.shape[0]
    adv = np.zeros_like(values, dtype=np.float32)
    last = np.zeros(values.shape[1:], dtype=np.float64)
    for t in reversed(range(length)):
        nonterminal = 1.0 - terminateds[t]
        carry = nonterminal * (1.0 - truncateds[t])
        next_value = values[t + 1] if t + 1 < length else 0.0
        delta = rewards[t] + gamma * nonterminal * next_value - values[t]
        last = delta + gamma * lambda_ * carry * last
        adv[t] = last
    return adv, (adv + values).astype(np.float32)
