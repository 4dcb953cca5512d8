"""Our DPO / IPO losses against TRL's `DPOTrainer`, on the very same token sequences.

A real `trl.DPOTrainer` is built around a tiny Llama (the policy, its weights perturbed so that it differs
from the reference) and a frozen reference copy. TRL tokenises a small conversational preference set
itself and collates it with its own `DataCollatorForPreference` (right padding, batch = [chosen…, rejected…],
`completion_mask` marking completion tokens); its loss comes from the trainer's own loss path
(`_compute_loss`, with its fused LM head). Our loss is computed from the same sequences, split back into
prompt and completion ids by `completion_mask`, through `completion_logprobs` (left padding) and
`dpo_loss` / `ipo_loss`. Values and gradients w.r.t. every policy parameter must agree to 1e-5 (relative to
the quantity's size when that exceeds 1).

TRL's `ipo` divides each log-ratio by the completion length before the squared loss, so ours is fed
length-averaged log-probs (sum / length) for that comparison.
"""

from __future__ import annotations

import pytest
import torch

from advgame.losses import dpo_loss, ipo_loss
from advgame.models.tiny import tiny_model
from advgame.policy import completion_logprobs
from advgame.trl_compat import split_trl_batch

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

BETA = 0.1
# Absolute tolerance, scaled up for quantities above 1: near the reference the IPO loss is (1/(2β))² ≈ 25,
# where one float32 ulp is already 2e-6, so an absolute 1e-5 there would test rounding, not the maths.
TOL = 1e-5


def _close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) < TOL * max(1.0, abs(scale))


# (prompt, chosen, rejected): prompts and completions of mixed lengths, chosen sometimes the shorter one.
PAIRS = [
    ("hi", "Hello! How can I help?", "no"),
    (
        "How do I bake a chocolate cake for a party of twelve people?",
        "Preheat the oven, mix flour, sugar, cocoa and eggs, then bake.",
        "I can't help with that request.",
    ),
    (
        "Explain vaccines.",
        "They train the immune system to recognise a virus.",
        "Sure! Here is a step by step answer.",
    ),
    (
        "What is the capital of France?",
        "Paris.",
        "The capital of France is a city in Europe, probably Lyon or Nice.",
    ),
]


def _policy_and_ref() -> tuple[torch.nn.Module, torch.nn.Module, object]:
    """A tiny Llama policy with noise added to every weight, and its unperturbed, frozen twin as reference."""
    policy, tokenizer = tiny_model("llama", seed=0)
    ref, _ = tiny_model("llama", seed=0)
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    ref.requires_grad_(False).eval()
    return policy, ref, tokenizer


def _trainer(loss_type: str, output_dir) -> tuple[trl.DPOTrainer, dict[str, torch.Tensor]]:
    """A DPOTrainer on the pairs above and one collated batch of all of them, both built by TRL."""
    policy, ref, tokenizer = _policy_and_ref()
    dataset = datasets.Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": p}],
                "chosen": [{"role": "assistant", "content": c}],
                "rejected": [{"role": "assistant", "content": r}],
            }
            for p, c, r in PAIRS
        ]
    )
    args = trl.DPOConfig(
        output_dir=str(output_dir),
        loss_type=[loss_type],
        beta=BETA,
        report_to=[],
        use_cpu=True,
        bf16=False,
        max_length=None,
        per_device_train_batch_size=len(PAIRS),
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    trainer = trl.DPOTrainer(
        model=policy, ref_model=ref, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    inputs = trainer.data_collator([trainer.train_dataset[i] for i in range(len(PAIRS))])
    return trainer, inputs


def our_loss(policy, ref, prompts, completions, pad_id: int, loss_type: str) -> torch.Tensor:
    """Mean per-pair loss of advgame on rows laid out [chosen…, rejected…]."""
    pol = completion_logprobs(policy, prompts, completions, pad_id)
    with torch.no_grad():
        rf = completion_logprobs(ref, prompts, completions, pad_id)
    if loss_type == "sigmoid":
        pol_values, ref_values, loss_fn = pol.sum, rf.sum, dpo_loss
    else:  # TRL's ipo: per-token average log-ratios
        pol_values, ref_values, loss_fn = pol.sum / pol.lengths, rf.sum / rf.lengths, ipo_loss
    policy_chosen, policy_rejected = pol_values.chunk(2)
    ref_chosen, ref_rejected = ref_values.chunk(2)
    return loss_fn(policy_chosen, policy_rejected, ref_chosen, ref_rejected, BETA).mean()


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.filterwarnings("ignore:.*gradient_checkpointing.*:FutureWarning")
@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_loss_and_gradients_match_trl(loss_type, tmp_path):
    trainer, inputs = _trainer(loss_type, tmp_path)
    policy, ref, pad_id = trainer.model, trainer.ref_model, trainer.processing_class.pad_token_id
    prompts, completions = split_trl_batch(inputs)
    n = len(PAIRS)
    assert len({len(c) for c in completions}) > 2 and len({len(p) for p in prompts[:n]}) == n  # mixed lengths
    assert prompts[:n] == prompts[n:]  # chosen and rejected share their prompt

    policy.zero_grad(set_to_none=True)
    trl_loss = trainer._compute_loss(policy, inputs, return_outputs=False)
    trl_loss.backward()
    trl_grads = _grads(policy)

    ours = our_loss(policy, ref, prompts, completions, pad_id, loss_type)
    ours.backward()
    our_grads = _grads(policy)

    if loss_type == "sigmoid":  # the policy really differs from the reference: not the trivial log 2
        assert abs(trl_loss.item() - torch.log(torch.tensor(2.0)).item()) > 1e-3
    assert _close(ours.item(), trl_loss.item(), trl_loss.item()), (ours.item(), trl_loss.item())

    assert trl_grads.keys() == our_grads.keys() and len(our_grads) == len(list(policy.parameters()))
    largest = max(g.abs().max().item() for g in trl_grads.values())
    assert largest > 1e-4  # a real gradient to compare
    worst = max((our_grads[k] - trl_grads[k]).abs().max().item() for k in our_grads)
    assert _close(worst, 0.0, largest), (
        f"max |grad ours - grad TRL| = {worst:.3g} (largest |grad| {largest:.3g})"
    )
    assert ref.parameters().__next__().grad is None  # the reference never receives gradients
