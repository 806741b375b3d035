"""Multi-agent PPO with a centralized critic (MAPPO) on RLlib's new API stack.

``MAPPOConfig().mappo(centralized_critic=False)`` is the same algorithm as
independent PPO with per-agent critics: the baseline of every comparison.
"""
from rllib_algospace.mappo.algorithm import MAPPO, MAPPOConfig, MAPPOTorchLearner
from rllib_algospace.mappo.modules import CHECKPOINT_FORMAT, TeamModule

__all__ = ["MAPPO", "MAPPOConfig", "MAPPOTorchLearner", "CHECKPOINT_FORMAT", "TeamModule"]
