"""DPO, IPO and GRPO against closed forms computed independently of the implementation."""

from __future__ import annotations

import math

import pytest
import torch

from advgame.losses import dpo_loss, grpo_advantages, grpo_loss, ipo_loss

# Hand-made summed log-probs for three pairs: (policy chosen, policy rejected, ref chosen, ref rejected)
PAIRS = [(-10.0, -12.0, -11.0, -11.5), (-5.0, -4.0, -5.5, -3.0), (-20.0, -20.0, -20.0, -20.0)]


def _inputs():
    pc, pr, rc, rr = (torch.tensor(col, requires_grad=i < 2) for i, col in enumerate(zip(*PAIRS)))
    return pc, pr, rc, rr


def _margins():
    return [(a - c) - (b - d) for a, b, c, d in PAIRS]  # Δ: 1.5, -1.5, 0.0


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_dpo_values_and_gradients_match_closed_form(beta):
    pc, pr, rc, rr = _inputs()
    loss = dpo_loss(pc, pr, rc, rr, beta)
    expected = [-math.log(_sigmoid(beta * d)) for d in _margins()]
    assert loss.tolist() == pytest.approx(expected, abs=1e-6)
    loss.sum().backward()
    # d/dΔ [−log σ(βΔ)] = −β σ(−βΔ); Δ rises with the chosen log-prob and falls with the rejected one.
    grad = [-beta * _sigmoid(-beta * d) for d in _margins()]
    assert pc.grad.tolist() == pytest.approx(grad, abs=1e-6)
    assert pr.grad.tolist() == pytest.approx([-g for g in grad], abs=1e-6)
    assert rc.grad is None and rr.grad is None


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_ipo_values_and_gradients_match_closed_form(beta):
    pc, pr, rc, rr = _inputs()
    loss = ipo_loss(pc, pr, rc, rr, beta)
    target = 1 / (2 * beta)
    assert loss.tolist() == pytest.approx([(d - target) ** 2 for d in _margins()], abs=1e-5)
    loss.sum().backward()
    grad = [2 * (d - target) for d in _margins()]
    assert pc.grad.tolist() == pytest.approx(grad, abs=1e-5)
    assert pr.grad.tolist() == pytest.approx([-g for g in grad], abs=1e-5)


def test_ipo_is_minimal_at_target_margin_and_dpo_at_infinity():
    beta = 0.1
    zero = torch.zeros(1)
    at_target = ipo_loss(torch.tensor([5.0]), zero, zero, zero, beta)
    assert at_target.item() == pytest.approx(0.0)
    beyond = ipo_loss(torch.tensor([8.0]), zero, zero, zero, beta)
    assert beyond.item() == pytest.approx(9.0)  # IPO pulls back past the target; DPO would not
    assert dpo_loss(torch.tensor([8.0]), zero, zero, zero, beta) < dpo_loss(
        torch.tensor([5.0]), zero, zero, zero, beta
    )


def test_advantages_batch_mode_excludes_missing_rewards():
    adv, valid = grpo_advantages([1.0, None, 3.0, 8.0])
    assert valid.tolist() == [True, False, True, True]
    assert adv.tolist() == pytest.approx([-3.0, 0.0, -1.0, 4.0])  # mean of valid = 4


def test_advantages_group_mode_and_scaling():
    adv, _ = grpo_advantages([1.0, 3.0, 10.0, 10.0, None], groups=[0, 0, 1, 1, 1], mode="group")
    assert adv.tolist() == pytest.approx([-1.0, 1.0, 0.0, 0.0, 0.0])
    scaled, _ = grpo_advantages([0.0, 2.0, 4.0], scale=True)
    std = math.sqrt(8 / 3)
    assert scaled.tolist() == pytest.approx([-2 / std, 0.0, 2 / std], rel=1e-5)
    with pytest.raises(ValueError):
        grpo_advantages([1.0, 2.0], mode="group")


def test_grpo_truncated_importance_weight_is_detached_and_capped():
    # Two rollouts, two tokens each; sampler log-probs chosen so the raw ratios are e^{0.5} and e^{1.5} (> cap
    # 2).
    logp = torch.tensor([[-1.0, -2.0], [-1.0, -2.0]], requires_grad=True)
    sampler = torch.tensor([[-1.5, -2.0], [-2.5, -3.5]])
    mask = torch.ones(2, 2)
    adv = torch.tensor([1.0, -2.0])
    out = grpo_loss(logp, mask, adv, beta=0.0, sampler_logprobs=sampler, is_cap=2.0)
    w = [[math.exp(0.5), 1.0], [2.0, 2.0]]
    objective = sum(w[i][t] * adv[i].item() for i in range(2) for t in range(2))
    assert out.loss.item() == pytest.approx(-objective / 2, rel=1e-6)
    out.loss.backward()
    # With w detached: ∂loss/∂logp_{i,t} = −w_{i,t}·Â_i / N (N = 2 rollouts).
    expected = [[-w[i][t] * adv[i].item() / 2 for t in range(2)] for i in range(2)]
    assert logp.grad.flatten().tolist() == pytest.approx([g for row in expected for g in row], rel=1e-6)
    assert out.clipped_fraction.item() == pytest.approx(0.5)


def test_grpo_without_correction_uses_unit_weight():
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    out = grpo_loss(
        logp, torch.ones(1, 2), torch.tensor([3.0]), beta=0.0, sampler_logprobs=torch.zeros(1, 2), is_cap=None
    )
    out.loss.backward()
    assert out.loss.item() == pytest.approx(-6.0)
    assert logp.grad.tolist() == [[-3.0, -3.0]]


def test_grpo_k3_kl_term_value_and_gradient():
    logp = torch.tensor([[-1.0, -2.0, -0.5]], requires_grad=True)
    ref = torch.tensor([[-1.5, -1.0, -0.5]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # the last token is padding
    beta = 0.1
    out = grpo_loss(logp, mask, torch.zeros(1), beta=beta, ref_logprobs=ref)
    k3 = [math.exp(r - l) - (r - l) - 1 for l, r in [(-1.0, -1.5), (-2.0, -1.0)]]
    assert out.loss.item() == pytest.approx(beta * sum(k3), rel=1e-6)
    assert out.kl.item() == pytest.approx(sum(k3) / 2, rel=1e-6)
    out.loss.backward()
    # ∂/∂l [β(e^{r−l} − (r−l) − 1)] = β(1 − e^{r−l}); padding gets no gradient.
    expected = [beta * (1 - math.exp(r - l)) for l, r in [(-1.0, -1.5), (-2.0, -1.0)]] + [0.0]
    assert logp.grad[0].tolist() == pytest.approx(expected, rel=1e-6)


def test_grpo_invalid_rollouts_contribute_nothing_but_count_in_mean():
    logp = torch.tensor([[-1.0], [-1.0]], requires_grad=True)
    adv = torch.tensor([2.0, 5.0])
    valid = torch.tensor([True, False])
    out = grpo_loss(logp, torch.ones(2, 1), adv, beta=0.0, valid=valid)
    assert out.loss.item() == pytest.approx(-1.0)  # −(2·1 + 0) / 2
    summed = grpo_loss(logp, torch.ones(2, 1), adv, beta=0.0, valid=valid, reduction="sum")
    assert summed.loss.item() == pytest.approx(-2.0)


def test_grpo_rollout_without_sampler_logprobs_loses_only_its_own_weight():
    # Row 0 has sampler log-probs (raw ratios e^{0.5}, e^{1.5} -> capped at 2); row 1 has none: w = 1 there
    # only.
    logp = torch.tensor([[-1.0, -2.0], [-1.0, -2.0]], requires_grad=True)
    sampler = torch.tensor([[-1.5, -3.5], [0.0, 0.0]])
    adv = torch.tensor([1.0, -2.0])
    out = grpo_loss(
        logp,
        torch.ones(2, 2),
        adv,
        beta=0.0,
        sampler_logprobs=sampler,
        is_cap=2.0,
        sampler_rows=torch.tensor([True, False]),
        reduction="sum",
    )
    out.loss.backward()
    w = [[math.exp(0.5), 2.0], [1.0, 1.0]]
    assert logp.grad.flatten().tolist() == pytest.approx(
        [-w[i][t] * adv[i].item() for i in range(2) for t in range(2)]
    )
    # the statistics cover the weighted row only
    assert out.weighted_tokens.item() == 2
    assert out.importance_weight.item() == pytest.approx((math.exp(0.5) + 2.0) / 2)
    assert out.clipped_fraction.item() == pytest.approx(0.5)
