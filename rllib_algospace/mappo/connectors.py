"""Learner connectors of MAPPO: GAE from the shared critic, and truncation fix.

``MAPPOGAEConnector`` replaces RLlib's GeneralAdvantageEstimation.

Runs at the END of the learner connector pipeline (the batch is complete and
already tensorized; AddOneTsToEpisodesAndTruncate has added one bootstrap row
per single-agent episode chunk and the LOSS_MASK/TERMINATEDS/TRUNCATEDS cols).

Row bookkeeping: RLlib's batch builders (AddObservationsFromEpisodesToBatch,
AddColumnsFromEpisodesToTrainBatch -> AgentToModuleMapping -> BatchIndividualItems)
write, for every module, the rows of its single-agent episodes in the order of
`ConnectorV2.single_agent_episode_iterator(episodes, agents_that_stepped_only=False)`
(episode by episode). RLlib's own GAE relies on the same order
(general_advantage_estimation.py:115). We recompute the (module, start, len)
slices in that same order, group them per MultiAgentEpisode chunk and require
all agents of a chunk to have the same length (all agents act every step) ->
row t of every agent slice is the same env step.
"""
from collections import defaultdict
from typing import Any, Dict, List

import numpy as np
import torch

from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing

from rllib_algospace.mappo.gae import gae_per_episode
from rllib_algospace.mappo.modules import CRITIC_ID, CRITIC_STATE, OLD_VALUES_NORM


def _actor_part(obs):
    return obs["obs"] if isinstance(obs, dict) else obs


class MAPPOGAEConnector(ConnectorV2):
    def __init__(
        self,
        input_observation_space=None,
        input_action_space=None,
        *,
        gamma: float,
        lambda_: float,
        agent_order: List[str],
        critic_input: str = "state_obs",  # "state_obs" | "concat_obs"
        standardize_advantages: bool = True,
        debug_checks: bool = False,
    ):
        super().__init__(input_observation_space, input_action_space)
        self.gamma = gamma
        self.lambda_ = lambda_
        self.agent_order = list(agent_order)
        self.critic_input = critic_input
        self.standardize_advantages = standardize_advantages
        self.debug_checks = debug_checks

    # ------------------------------------------------------------------
    def _slices(self, episodes, batch):
        """Per MA-episode: {agent_id: (module_id, start, length)} (see docstring)."""
        offsets = defaultdict(int)
        per_ep = []
        for ma_ep in episodes:
            d = {}
            for sa_ep in self.single_agent_episode_iterator(
                [ma_ep], agents_that_stepped_only=False
            ):
                mid = sa_ep.module_id
                L = len(sa_ep)
                d[sa_ep.agent_id] = (mid, offsets[mid], L, sa_ep)
                offsets[mid] += L
            per_ep.append(d)
        for mid, n in offsets.items():
            if mid in batch:
                n_b = batch[mid][Columns.REWARDS].shape[0]
                assert n == n_b, f"row bookkeeping mismatch for {mid}: {n} vs {n_b}"
        return per_ep

    def __call__(self, *, rl_module, episodes, batch: Dict[str, Any], metrics=None, **kwargs):
        critic = rl_module[CRITIC_ID].unwrapped()
        per_ep = self._slices(episodes, batch)

        states, rews, terms, truncs, masks, ep_rows = [], [], [], [], [], []
        rows_checked = 0
        for d in per_ep:
            if not d:
                continue
            missing = [a for a in self.agent_order if a not in d]
            if missing:
                raise ValueError(f"MAPPO: agents {missing} missing in an episode chunk")
            lens = {d[a][2] for a in self.agent_order}
            if len(lens) != 1:
                raise ValueError(
                    f"MAPPO: agents' chunk lengths differ {lens}; centralized critic "
                    "requires all agents to act at every env step."
                )
            L = lens.pop()
            sl = {a: (d[a][0], slice(d[a][1], d[a][1] + L)) for a in self.agent_order}
            # Global state rows (L incl. the bootstrap row).
            if self.critic_input == "state_obs":  # Dict obs {"obs", "state"}
                m0, s0 = sl[self.agent_order[0]]
                st = batch[m0][Columns.OBS]["state"][s0].float().cpu()
            else:  # concat of agent observations, fixed agent_order
                st = torch.cat(
                    [_actor_part(batch[m][Columns.OBS])[s].float().reshape(L, -1).cpu()
                     for m, s in sl.values()],
                    dim=-1,
                )
            states.append(st)
            col = lambda c: torch.stack(
                [batch[m][c][s].float().cpu() for m, s in sl.values()], dim=-1
            )
            rews.append(col(Columns.REWARDS))
            terms.append(col(Columns.TERMINATEDS))
            truncs.append(col(Columns.TRUNCATEDS))
            masks.append(col(Columns.LOSS_MASK).bool().all(dim=-1))
            ep_rows.append((sl, L))
            if self.debug_checks:
                # Alignment check: batch rows == episode observations, per agent.
                for a in self.agent_order:
                    m, s = sl[a]
                    ep_obs = d[a][3].get_observations(slice(0, L))
                    if isinstance(ep_obs, dict):
                        ep_obs = ep_obs["obs"]
                    ep_obs = np.stack(ep_obs)
                    b_obs = _actor_part(batch[m][Columns.OBS])[s].cpu().numpy()
                    assert np.allclose(ep_obs, b_obs), f"row misalignment for {a}"
                    if self.critic_input == "state_obs":
                        assert torch.allclose(
                            batch[m][Columns.OBS]["state"][s].float().cpu(), st
                        ), "global state differs between agents at same row"
                rows_checked += L

        if not states:
            return batch

        S = torch.cat(states)  # (N, D)
        device = next(critic.parameters()).device
        with torch.no_grad():
            v_norm = critic.compute_values({CRITIC_STATE: S.to(device)})
            v = critic.denormalize(v_norm).float().cpu().numpy()  # (N, n)

        advs, tgts = [], []
        i0 = 0
        for (sl, L), r, te, tr in zip(ep_rows, rews, terms, truncs):
            a_, t_ = gae_per_episode(
                v[i0 : i0 + L], r.numpy(), te.numpy(), tr.numpy(), self.gamma, self.lambda_
            )
            advs.append(a_)
            tgts.append(t_)
            i0 += L
        adv = np.concatenate(advs)  # (N, n) raw advantages
        tgt = np.concatenate(tgts)  # (N, n) value targets (return space)
        mask = torch.cat(masks).numpy()  # (N,)

        # --- value normalization: update running stats with valid targets ----
        valid_t = torch.as_tensor(tgt[mask], device=device)
        s1, s2 = valid_t.sum(0), (valid_t**2).sum(0)
        cnt = torch.tensor(float(valid_t.shape[0]), device=device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for x in (s1, s2, cnt):  # keep stats identical across DDP learners
                torch.distributed.all_reduce(x)
        critic.update_stats(s1, s2, cnt)
        with torch.no_grad():
            tgt_norm = critic.normalize(torch.as_tensor(tgt, device=device))
            old_norm = critic.normalize(torch.as_tensor(v, device=device))

        batch[CRITIC_ID] = {
            CRITIC_STATE: S.to(device),
            Postprocessing.VALUE_TARGETS: tgt_norm.float(),
            OLD_VALUES_NORM: old_norm.float(),
            Columns.LOSS_MASK: torch.as_tensor(mask, device=device),
        }

        # --- per-agent advantages / targets back into each module's rows -----
        # (several agents may share one module -> accumulate per module first)
        cols = {}
        for j, a in enumerate(self.agent_order):
            i0 = 0
            for (sl, L) in ep_rows:
                m, s = sl[a]
                if m not in cols:
                    nrows = batch[m][Columns.REWARDS].shape[0]
                    cols[m] = (torch.zeros(nrows), torch.zeros(nrows))
                cols[m][0][s] = torch.as_tensor(adv[i0 : i0 + L, j])
                cols[m][1][s] = torch.as_tensor(tgt[i0 : i0 + L, j])
                i0 += L
        for m, (col_adv, col_tgt) in cols.items():
            if self.standardize_advantages:
                lm = batch[m][Columns.LOSS_MASK].bool().cpu()
                mu, sd = col_adv[lm].mean(), col_adv[lm].std()
                col_adv = torch.where(lm, (col_adv - mu) / torch.clamp(sd, min=1e-4), 0.0)
            dev = batch[m][Columns.REWARDS].device
            batch[m][Postprocessing.ADVANTAGES] = col_adv.to(dev)
            batch[m][Postprocessing.VALUE_TARGETS] = col_tgt.to(dev)

        if metrics is not None:
            # Critic loss on THIS (fresh) batch before any update of this iteration
            # (normalized space, valid rows) - the honest "is the critic improving" signal.
            m_t = torch.as_tensor(mask, device=device)
            pre = ((old_norm - tgt_norm) ** 2).mean(-1)[m_t].mean()
            metrics.log_value((CRITIC_ID, "vf_loss_pre_update"), float(pre), window=1)
            mean, std = critic.norm_stats()
            metrics.log_value((CRITIC_ID, "value_norm_mean"), float(mean.mean()), window=1)
            metrics.log_value((CRITIC_ID, "value_norm_std"), float(std.mean()), window=1)
            if self.debug_checks:
                metrics.log_value((CRITIC_ID, "rows_alignment_checked"), rows_checked, reduce="sum")
        return batch


class BootstrapTruncatedEpisodes(ConnectorV2):
    """Clears TERMINATEDS where TRUNCATEDS is set (learner pipeline, before GAE).

    Ray 2.60 MultiAgentEpisode.add_env_step (multi_agent_episode.py:404-416) sets
    `is_terminated=True` whenever ALL agents are done - also when they are all
    merely truncated (time limit) - and then passes terminated=True to every
    agent's SingleAgentEpisode (line 455). AddOneTsToEpisodesAndTruncate then
    writes terminated=1 AND truncated=1 on the last real row, so GAE
    (compute_value_targets) drops the V(s_T) bootstrap at time-limit truncation.
    A real termination never has truncated=1 (truncateds['__all__'] is False).
    """

    def __call__(self, *, rl_module, batch, episodes, metrics=None, **kwargs):
        n_fixed = 0
        for mid, mb in batch.items():
            if not isinstance(mb, dict) or Columns.TRUNCATEDS not in mb:
                continue
            te, tr = mb[Columns.TERMINATEDS], mb[Columns.TRUNCATEDS]
            both = te.bool() & tr.bool()
            n_fixed += int(both.sum())
            mb[Columns.TERMINATEDS] = torch.where(both, torch.zeros_like(te), te)
        if metrics is not None:
            metrics.log_value("rows_truncated_but_marked_terminated", n_fixed, reduce="sum")
        return batch
