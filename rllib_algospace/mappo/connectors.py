"""The learner connector of MAPPO: per-agent GAE from the team's critic.

``TeamGAEConnector`` replaces RLlib's ``GeneralAdvantageEstimation`` at the end
of the learner connector pipeline. By then the batch is complete and a tensor,
and ``AddOneTsToEpisodesAndTruncate`` has added one bootstrap row to every
episode chunk (its loss mask is off). The team module's critic gives one value
per agent for every row (``(B, n)``); GAE runs per episode chunk on ``(L, n)``
arrays (``gae.gae_chunks``, all chunks at once), with the team reward for every agent or,
when the env's agents' rewards differ (``w_shared < 1``), each agent's own
from the step's ``infos["agent_rewards"]``. The value targets update the
running value normalisation first; the batch then holds, per agent (column),
the standardised advantages, the normalised value targets and the old
normalised values (for the clipped value loss). Rows are in the order of
``single_agent_episode_iterator``, as RLlib's own GAE relies on.

On the single-agent path RLlib marks a time-limit truncation, and a chunk
cut off by the batch size, as truncated only (the multi-agent path marked it
terminated too and lost the bootstrap), so ``gae_chunks`` bootstraps both
from the critic's value of the chunk's extra row.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np
import torch

from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing

from rllib_algospace.mappo.gae import gae_chunks

OLD_VALUES_NORM = "old_values_norm"  # batch column: the critic's values when sampled, normalised
AGENT_REWARDS = "agent_rewards"  # infos key of the agents' own rewards (envs.market.team)


class TeamGAEConnector(ConnectorV2):
    def __init__(
        self,
        input_observation_space=None,
        input_action_space=None,
        *,
        gamma: float,
        lambda_: float,
        standardize_advantages: bool = True,
    ):
        super().__init__(input_observation_space, input_action_space)
        self.gamma = gamma
        self.lambda_ = lambda_
        self.standardize_advantages = standardize_advantages

    def __call__(self, *, rl_module, episodes, batch: Dict[str, Any], metrics=None, **kwargs):
        for module_id, module_batch in batch.items():
            module = rl_module[module_id].unwrapped()
            chunks = [e for e in self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False) if e.module_id in (None, module_id)]
            self._module_gae(module_id, module, module_batch, chunks, metrics)
        return batch

    def _module_gae(self, module_id, module, batch: dict, chunks: list, metrics) -> None:
        device = batch[Columns.REWARDS].device
        n = len(module.agents)
        with torch.no_grad():
            values_norm = module.compute_values(batch)
            values = module.value_normalizer.denormalize(values_norm).float().cpu().numpy()
        lens = [len(e) for e in chunks]
        rows = sum(lens)
        if rows != values.shape[0]:
            raise RuntimeError(f"MAPPO: {values.shape[0]} batch rows but {rows} episode rows")
        rewards = batch[Columns.REWARDS].float().cpu().numpy()
        terminateds = batch[Columns.TERMINATEDS].float().cpu().numpy()
        truncateds = batch[Columns.TRUNCATEDS].float().cpu().numpy()
        mask = batch[Columns.LOSS_MASK].bool().cpu().numpy() if Columns.LOSS_MASK in batch else np.ones(rows, bool)
        per_agent, start = [], 0
        for episode, length in zip(chunks, lens):
            per_agent.append(_agent_rewards(episode, rewards[start : start + length], n))
            start += length
        rewards = np.concatenate(per_agent) if per_agent else np.zeros((0, n), np.float32)
        column = lambda x: np.repeat(x[:, None], n, axis=1)  # noqa: E731
        advantages, targets = gae_chunks(values, rewards, column(terminateds), column(truncateds), lens, self.gamma, self.lambda_)

        # Value normalisation: fold in this batch's valid targets first.
        valid = torch.as_tensor(targets[mask], device=device)
        total, total_sq = valid.sum(0), (valid**2).sum(0)
        count = torch.tensor(float(valid.shape[0]), device=device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for x in (total, total_sq, count):  # identical statistics on every learner
                torch.distributed.all_reduce(x)
        module.value_normalizer.update(total, total_sq, count)
        targets_t = torch.as_tensor(targets, device=device)
        with torch.no_grad():
            targets_norm = module.value_normalizer.normalize(targets_t)
            old_norm = module.value_normalizer.normalize(torch.as_tensor(values, device=device))

        advantages_t = torch.as_tensor(advantages, device=device)
        if self.standardize_advantages:
            mask_t = torch.as_tensor(mask, device=device)
            mean = advantages_t[mask_t].mean(0)
            std = advantages_t[mask_t].std(0).clamp_min(1e-4)
            advantages_t = torch.where(mask_t[:, None], (advantages_t - mean) / std, torch.zeros_like(advantages_t))
        batch[Postprocessing.ADVANTAGES] = advantages_t
        batch[Postprocessing.VALUE_TARGETS] = targets_norm.float()
        batch[OLD_VALUES_NORM] = old_norm.float()
        if metrics is not None:
            # The critic's error on this fresh batch before any update: is it learning?
            mask_t = torch.as_tensor(mask, device=device)
            pre = ((old_norm - targets_norm) ** 2).mean(-1)[mask_t].mean()
            metrics.log_value((module_id, "vf_loss_pre_update"), float(pre), window=1)
            mean, std = module.value_normalizer.mean_std()
            metrics.log_value((module_id, "value_norm_mean"), float(mean.mean()), window=1)
            metrics.log_value((module_id, "value_norm_std"), float(std.mean()), window=1)


def _agent_rewards(episode, team_rewards: np.ndarray, n: int) -> np.ndarray:
    """``(L, n)`` rewards of one chunk: each agent's own where the infos carry
    them, else the team reward for all. Row t's reward came with infos[t + 1];
    the chunk's last row is RLlib's bootstrap row (no reward of its own, loss
    mask off), so it keeps the team reward RLlib gave it (0)."""
    out = np.repeat(team_rewards[:, None], n, axis=1)
    infos = episode.get_infos()
    if len(infos) < 2 or AGENT_REWARDS not in infos[1]:
        return out
    for t in range(len(team_rewards) - 1):
        if t + 1 < len(infos) and AGENT_REWARDS in infos[t + 1]:
            out[t] = infos[t + 1][AGENT_REWARDS]
    return out
