"""AdvGame's DPO-MD in one file: an Attacker LM and a Defender LM trained together by online DPO, each
sampling from and regularised towards an EMA copy of itself (Paulus et al., arXiv 2512.20806).

    python examples/dpo_md_minimal.py                          # tiny random models: seconds on a CPU
    python examples/dpo_md_minimal.py --model smollm2 --max-new-tokens 96 --steps 20    # SmolLM2-135M

This is the algorithm and nothing else: no distribution, no vLLM engines, no checkpoints, one micro-batch.
The package (`advgame train`) runs the same step; tests/test_minimal_example.py checks that one step of
this file equals one `advgame.game.step.game_step`. From the package it borrows only what is not the
algorithm: the model loader, the seed files, the Attacker's instructions and the heuristic judge.

One game step, for each split (harmful seeds, then benign seeds):
    1. the Attacker, sampling from its EMA θ̄_A, writes A rewrites x of each seed s
    2. the faithfulness judge gates them: an unfaithful (or unparsable, or cut-off) rewrite scores −1
    3. the Defender, sampling from its EMA θ̄_D, answers each faithful rewrite D times (it sees x only)
    4. the Defender judge scores the answers y against x (harmful: deflection; benign: compliance)
    5. each rewrite is represented by the Defender's best answer (optimistic attacker), which the
       Attacker judge scores against the seed s (harmful: compliance; benign: outright refusal)
    6. per group, best vs worst reward -> a DPO pair; each player takes one AdamW step on its pairs
then both EMAs move: θ̄ ← d·θ̄ + (1−d)·θ.
"""

from __future__ import annotations

import argparse
import hashlib
import random
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import combinations

import torch
import torch.nn.functional as F

from advgame.config.schema import ModelConfig
from advgame.data.seeds import load_seeds
from advgame.game.attacker_io import attacker_instruction, parse_attacker_output
from advgame.judges.base import FaithItem, PairItem
from advgame.judges.heuristic import HeuristicJudge
from advgame.models.loading import load_model

DEFENDER_RUBRIC = {"harmful": "deflection", "benign": "compliance"}  # what the Defender is paid for
ATTACKER_RUBRIC = {"harmful": "compliance", "benign": "refusal"}  # the same answers, the other way round
PENALTY = -1.0  # below every judge score (0-10): format and faithfulness failures lose to any judged sample


@dataclass
class Args:
    model: str = "tiny-llama"  # both players start from it: 'tiny-llama', 'smollm2', a path or hub id
    seed: int = 0
    steps: int = 5
    seeds_per_split: int = 2
    num_attacker_samples: int = 2  # A
    num_defender_samples: int = 2  # D
    max_new_tokens: int = 24
    temperature: float = 0.6
    top_p: float = 0.9
    attacker_format: str = "plain"  # 'plain', 'nothink' or 'think' (advgame.game.attacker_io)
    beta: float = 0.1  # DPO temperature
    ema_decay: float = 0.5
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0


@dataclass
class Sample:
    prompt_ids: list[int]
    ids: list[int]  # the completion, ending with the end-of-turn token unless cut off
    text: str
    truncated: bool


class Player:
    """A model, its optimiser and the EMA θ̄ of its weights (the MD anchor: it samples and it is π_ref)."""

    def __init__(self, name: str, model, tokenizer, args: Args):
        self.name, self.model, self.tokenizer = name, model, tokenizer
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.ema = [p.detach().clone() for p in self.params]
        self.optimizer = torch.optim.AdamW(
            self.params, lr=args.lr, betas=args.betas, eps=args.eps, weight_decay=args.weight_decay
        )

    @contextmanager
    def ema_weights(self):
        """Inside the block the model runs with θ̄ (storage is swapped, nothing is copied)."""
        self._swap()
        try:
            yield self.model
        finally:
            self._swap()

    def _swap(self) -> None:
        for i, p in enumerate(self.params):
            p.data, self.ema[i] = self.ema[i], p.data

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        for ema, p in zip(self.ema, self.params):
            ema.lerp_(p.detach(), 1.0 - decay)  # θ̄ ← d·θ̄ + (1−d)·θ


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from (run seed, step, split, role): every sampling call is reproducible."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:4], "little") >> 1


def stop_ids(tokenizer) -> list[int]:
    """Tokens that end an assistant turn: eos, and ChatML's <|im_end|> where the vocabulary has it."""
    ids = [tokenizer.eos_token_id]
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return ids + [im_end] if isinstance(im_end, int) and im_end not in (tokenizer.unk_token_id, *ids) else ids


def chat_ids(tokenizer, message: str) -> list[int]:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def left_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


@torch.no_grad()
def sample(player: Player, prompts: list[str], n: int, seed: int, args: Args) -> list[Sample]:
    """n completions per prompt (prompt-major) from the player's EMA weights, seeded."""
    tok, model = player.tokenizer, player.model
    if not prompts:
        return []
    rows = [chat_ids(tok, p) for p in prompts for _ in range(n)]
    ids, mask = left_pad(rows, tok.pad_token_id)
    stop = stop_ids(tok)
    was_training = model.training
    model.eval()
    with player.ema_weights(), torch.random.fork_rng():  # sample from θ̄, not from θ
        torch.manual_seed(seed)
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=True,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=None,
            max_new_tokens=args.max_new_tokens,
            eos_token_id=stop,
            pad_token_id=tok.pad_token_id,
            use_cache=True,
        )
    model.train(was_training)
    samples = []
    for prompt_ids, row in zip(rows, out[:, ids.shape[1] :].tolist()):
        end = next((j for j, t in enumerate(row) if t in stop), None)  # None: cut off at max_new_tokens
        row = row if end is None else row[: end + 1]
        samples.append(Sample(prompt_ids, row, tok.decode(row, skip_special_tokens=True), end is None))
    return samples


def judge_group(judge, rubric: str, query: str, candidates: list[str]) -> list[float | None]:
    """Pairwise judging: every unordered pair once (a lone candidate against itself); a candidate's score
    is the mean of the scores it received (None when every call about it failed)."""
    pairs = [(0, 0)] if len(candidates) == 1 else list(combinations(range(len(candidates)), 2))
    verdicts = judge.score_pairs([PairItem(rubric, query, candidates[i], candidates[j]) for i, j in pairs])
    got: list[list[float]] = [[] for _ in candidates]
    for (i, j), verdict in zip(pairs, verdicts):
        if verdict is not None:
            got[i].append(verdict[0])
            got[j].append(verdict[1])
    return [sum(s) / len(s) if s else None for s in got]


def play_split(
    attacker: Player, defender: Player, judge, seeds: list[str], category: str, step: int, args: Args
) -> tuple[list[list], list[list]]:
    """Steps 1-5 for one split. Returns each player's groups of (reward, Sample): per seed, the Attacker's
    rewrites; per faithful rewrite, the Defender's answers. A reward of None is no signal (a judge failed)."""
    A, D = args.num_attacker_samples, args.num_defender_samples
    # 1. rewrites x ~ ρ_θ̄(·|c, s), parsed strictly
    outs = sample(
        attacker,
        [attacker_instruction(s, category, args.attacker_format) for s in seeds],
        A,
        derive_seed(args.seed, step, category, "attacker"),
        args,
    )
    rewrites = [None if o.truncated else parse_attacker_output(o.text, args.attacker_format) for o in outs]
    # 2. the faithfulness gate: cut-off, unparsable and unfaithful rewrites score −1 and get no answers
    todo = [i for i, r in enumerate(rewrites) if r is not None]
    verdicts = dict(
        zip(todo, judge.faithful([FaithItem(seeds[i // A], rewrites[i].prompt, category) for i in todo]))
    )
    rewards = [PENALTY if verdicts.get(i, False) is False else None for i in range(len(outs))]
    faithful = [i for i in todo if verdicts[i]]
    # 3. answers y ~ π_θ̄(·|x), D per faithful rewrite; a cut-off answer scores −1
    answers = sample(
        defender,
        [rewrites[i].prompt for i in faithful],
        D,
        derive_seed(args.seed, step, category, "defender"),
        args,
    )
    defender_groups, best = [], {}
    for k, i in enumerate(faithful):
        group = answers[k * D : (k + 1) * D]
        done = [j for j, a in enumerate(group) if not a.truncated]
        # 4. the Defender judge scores the finished answers against the rewrite x
        texts = [group[j].text for j in done]
        scores = dict(zip(done, judge_group(judge, DEFENDER_RUBRIC[category], rewrites[i].prompt, texts)))
        defender_groups.append([(scores.get(j, PENALTY), a) for j, a in enumerate(group)])
        # 5a. optimistic attacker: the rewrite stands for its best-judged answer (first on ties)
        judged = [(score, -j) for j, score in scores.items() if score is not None]
        if judged:
            best[i] = group[-max(judged)[1]]
    # 5b. the Attacker judge scores those answers against the seed s, per seed
    for n, seed in enumerate(seeds):
        valid = [i for i in range(n * A, (n + 1) * A) if i in best]
        if valid:
            for i, score in zip(
                valid, judge_group(judge, ATTACKER_RUBRIC[category], seed, [best[i].text for i in valid])
            ):
                rewards[i] = score
    groups = list(zip(rewards, outs))
    return [groups[n * A : (n + 1) * A] for n in range(len(seeds))], defender_groups


def preference_pair(group: list[tuple[float | None, Sample]]) -> tuple[list[int], ...] | None:
    """Step 6: chosen = the highest reward, rejected = the lowest (first index on ties); none on a tie."""
    scored = [(r, i, s) for i, (r, s) in enumerate(group) if r is not None]
    if len(scored) < 2:
        return None
    best, worst = max(scored, key=lambda t: (t[0], -t[1])), min(scored, key=lambda t: (t[0], t[1]))
    if best[0] == worst[0]:
        return None
    chosen, rejected = best[2], worst[2]
    rejected_ids = rejected.ids
    if rejected.truncated and len(rejected_ids) > len(chosen.ids):  # length alone must not separate them
        rejected_ids = rejected_ids[: len(chosen.ids)]
    return chosen.prompt_ids, chosen.ids, rejected_ids


def sequence_logprobs(model, prompts: list[list[int]], completions: list[list[int]], pad: int):
    """log π(y|x) = Σ_t log π(y_t | x, y_<t) per row; rows laid out [pad][prompt][completion]."""
    ids, mask = left_pad([p + c for p, c in zip(prompts, completions)], pad)
    width = max(len(c) for c in completions)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = (
        model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=position_ids,
            use_cache=False,
            logits_to_keep=width + 1,
        )
        .logits[:, :-1]
        .float()
    )  # position j predicts token j+1
    targets = ids[:, -width:]
    token_logps = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    lengths = torch.tensor([len(c) for c in completions])
    in_completion = torch.arange(width)[None, :] >= width - lengths[:, None]  # right-aligned completions
    return (token_logps * in_completion).sum(-1)


def dpo_loss(
    pol_w: torch.Tensor, pol_l: torch.Tensor, ref_w: torch.Tensor, ref_l: torch.Tensor, beta: float
) -> torch.Tensor:
    """Per pair: −log σ(β·Δ),  Δ = [log π_θ(y_w) − log π_ref(y_w)] − [log π_θ(y_l) − log π_ref(y_l)]
    (Rafailov et al., 2023). In DPO-MD π_ref is the EMA θ̄, the same weights that sampled y_w and y_l."""
    delta = (pol_w - ref_w) - (pol_l - ref_l)
    return -F.logsigmoid(beta * delta)


def update(player: Player, pairs: list[tuple], args: Args) -> float | None:
    """One AdamW step on the mean DPO loss of `pairs` (none: no step)."""
    if not pairs:
        return None
    prompts = [p for p, _, _ in pairs] * 2
    completions = [w for _, w, _ in pairs] + [lo for _, _, lo in pairs]  # P chosen rows, then P rejected
    pad = player.tokenizer.pad_token_id
    with torch.no_grad(), player.ema_weights():  # the reference: the EMA, without gradient
        ref_w, ref_l = sequence_logprobs(player.model, prompts, completions, pad).split(len(pairs))
    pol_w, pol_l = sequence_logprobs(player.model, prompts, completions, pad).split(len(pairs))
    loss = dpo_loss(pol_w, pol_l, ref_w, ref_l, args.beta).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(player.params, args.max_grad_norm)
    player.optimizer.step()
    player.optimizer.zero_grad(set_to_none=True)
    return loss.item()


def game_step(
    attacker: Player, defender: Player, judge, batches: dict[str, list[str]], step: int, args: Args
) -> dict[str, dict]:
    """One step of the game over both splits; per split, each player's pairs and loss."""
    out = {}
    for category in ("harmful", "benign"):
        attacker_groups, defender_groups = play_split(
            attacker, defender, judge, batches[category], category, step, args
        )
        out[category] = {}
        for player, groups in ((attacker, attacker_groups), (defender, defender_groups)):
            pairs = [p for p in map(preference_pair, groups) if p is not None]
            out[category][player.name] = {"pairs": pairs, "loss": update(player, pairs, args)}
    for player in (attacker, defender):  # the anchors move once per step, after both splits
        player.update_ema(args.ema_decay)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in vars(Args()).items():
        if not isinstance(default, tuple):
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    args = Args(**vars(parser.parse_args()))
    torch.manual_seed(args.seed)
    players = [
        Player(name, *load_model(ModelConfig(path=args.model, finetune="full", device="cpu")), args)
        for name in ("attacker", "defender")
    ]
    judge = HeuristicJudge()
    seeds = {c: [s.text for s in load_seeds(f"builtin:demo_{c}", c)] for c in ("harmful", "benign")}
    rng = random.Random(args.seed)
    for step in range(args.steps):
        batches = {c: rng.sample(seeds[c], args.seeds_per_split) for c in seeds}
        out = game_step(*players, judge, batches, step, args)
        report = [
            f"{c}/{role}: {len(r['pairs'])} pairs, loss {r['loss']}"
            for c, roles in out.items()
            for role, r in roles.items()
        ]
        print(f"step {step + 1}: " + "; ".join(report))


if __name__ == "__main__":
    main()
