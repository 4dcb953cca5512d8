"""DPO (Rafailov et al., 2023).

    loss = −log σ(β · Δ),   Δ = [log π_θ(y_w) − log π_ref(y_w)] − [log π_θ(y_l) − log π_ref(y_l)]

β = 0.1 in the paper runs. Returns the per-pair loss; the caller averages over the global batch of pairs.
Its gradient w.r.t. Δ is −β·σ(−βΔ): pairs the policy already ranks well stop pushing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from advgame.losses.margin import preference_margin


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Per-pair DPO loss, shape [P], from summed sequence log-probs of shape [P]."""
    delta = preference_margin(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    return -F.logsigmoid(beta * delta)
