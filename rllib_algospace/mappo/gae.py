"""Generalised advantage estimation on episode chunks (numpy only, no Ray).

The connector in ``connectors.py`` feeds it the critic's values for every
agent at once, for all the batch's chunks in one call; the unit tests compare
it with a textbook GAE.
"""
from __future__ import annotations

import numpy as np


def gae_chunks(values, rewards, terminateds, truncateds, lengths, gamma: float, lambda_: float):
    """GAE over consecutive episode chunks, each ending with RLlib's bootstrap row.

    ``values``, ``rewards``, ``terminateds`` and ``truncateds`` are ``(N, n)``
    arrays (``n`` agents, or 1): the rows of the chunks one after the other,
    chunk ``i`` having ``lengths[i]`` rows. A chunk's last row is the extra
    timestep RLlib appends (its loss mask is off); its value is the bootstrap
    value ``V(s_L)``. A terminated row does not bootstrap; a truncated row stops
    the advantage recursion but keeps ``V(s_{t+1})``. The recursion runs
    backwards over time for all chunks at once (rows padded to the longest
    chunk). Returns ``(advantages, value_targets)``, both float32 ``(N, n)``.
    """
    values = np.asarray(values, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.int64)
    n_rows, n = values.shape
    if lengths.sum() != n_rows:
        raise ValueError(f"GAE: chunk lengths add up to {lengths.sum()}, but there are {n_rows} rows")
    chunks, longest = len(lengths), int(lengths.max()) if len(lengths) else 0
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    chunk_of_row = np.repeat(np.arange(chunks), lengths)
    step_of_row = np.arange(n_rows) - np.repeat(starts, lengths)

    def padded(x, fill=0.0):
        out = np.full((chunks, longest + 1, n), fill, dtype=np.float64)
        out[chunk_of_row, step_of_row] = np.asarray(x, dtype=np.float64).reshape(n_rows, n)
        return out

    v, r, te, tr = padded(values), padded(rewards), padded(terminateds), padded(truncateds)
    nonterminal = 1.0 - te
    # Past a chunk's end the padding has V = 0 and no reward; a chunk's own
    # last row never reads beyond itself because it is the bootstrap row
    # (``t + 1 < length`` there only for earlier rows).
    delta = r[:, :-1] + gamma * nonterminal[:, :-1] * v[:, 1:] - v[:, :-1]
    carry = gamma * lambda_ * nonterminal[:, :-1] * (1.0 - tr[:, :-1])
    adv = np.zeros((chunks, longest, n))
    last = np.zeros((chunks, n))
    for t in range(longest - 1, -1, -1):
        last = delta[:, t] + carry[:, t] * last
        adv[:, t] = last
    out = adv[chunk_of_row, step_of_row]
    return out.astype(np.float32), (out + values).astype(np.float32)


def gae_per_episode(values, rewards, terminateds, truncateds, gamma: float, lambda_: float):
    """``gae_chunks`` for one chunk of ``(L, n)`` arrays."""
    values = np.asarray(values)
    return gae_chunks(values, rewards, terminateds, truncateds, [values.shape[0]], gamma, lambda_)
