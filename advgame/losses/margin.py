"""The implicit-reward margin Δ shared by DPO and IPO.

    Δ = [log π_θ(y_w) − log π_ref(y_w)] − [log π_θ(y_l) − log π_ref(y_l)]

with summed (not length-normalised) sequence log-probabilities of the chosen y_w and rejected y_l
completions, as in the authors' runs. The reference is the EMA copy in the MD variants, the frozen
initial model otherwise; its log-probs carry no gradient.
"""

from __future__ import annotations

import torch


def preference_margin(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
) -> torch.Tensor:
    """Δ per pair, shape [P]. Reference inputs are detached."""
    return (policy_chosen - ref_chosen.detach()) - (policy_rejected - ref_rejected.detach())
