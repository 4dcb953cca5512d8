"""IPO (Azar et al., 2024, eq. 17), the regression form of preference optimisation.

    loss = (Δ − 1/(2β))²,   Δ = [log π_θ(y_w) − log π_ref(y_w)] − [log π_θ(y_l) − log π_ref(y_l)]

β does not multiply Δ: with β = 0.1 the policy is pulled towards a margin of exactly 5 nats over the
reference, whatever the pair, which bounds how far a single pair can move it (no Bradley–Terry saturation).
The authors use summed sequence log-probs; TRL's `ipo` divides each log-ratio by its completion length
first. Pass length-averaged log-probs to get TRL's variant.
"""

from __future__ import annotations

import torch

from advgame.losses.margin import preference_margin


def ipo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Per-pair IPO loss, shape [P], from sequence log-probs of shape [P]."""
    delta = preference_margin(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    return (delta - 1.0 / (2.0 * beta)) ** 2
