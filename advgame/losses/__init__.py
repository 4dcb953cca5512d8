"""Preference and RL losses of the game. Each module holds one loss and documents its formula."""

from advgame.losses.dpo import dpo_loss
from advgame.losses.grpo import GRPOLossOutput, grpo_advantages, grpo_loss
from advgame.losses.ipo import ipo_loss
from advgame.losses.margin import preference_margin

__all__ = ["GRPOLossOutput", "dpo_loss", "grpo_advantages", "grpo_loss", "ipo_loss", "preference_margin"]
