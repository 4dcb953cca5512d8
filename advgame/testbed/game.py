"""The finite AdvGame: seeds, rewrite strategies, the prompts the defender sees, response types, payoffs.

    seed (c, s) ~ ξ           c ∈ {harmful, benign}; the attacker sees (c, s)
    strategy k ~ ρ(·|s)       a rewrite strategy; the rewrite is the prompt x = prompt_of[s, k]
    response y ~ π(·|x)       the defender sees only x (never s, c or k)

Rewards (reward units, R = reward_scale · rubric score on the judges' 0–10 scale):

    R_def[s, k, y]   defender: deflection rubric if c = harmful, compliance rubric if c = benign (judged on x)
    R_att[s, k, y]   attacker: compliance of y judged against the seed if c = harmful, outright refusal
                     if c = benign; an unfaithful strategy scores −1 (patched) whatever y, and its prompt
                     never reaches the defender (prompt_of = −1, no defender reward, no defender training)

Several (s, k) may map to the same prompt id: rewrites the defender cannot tell apart. Then its reward at
x is the posterior mean over the (s, k) that produced x, which depends on ρ: the game is coupled. With
distinct prompts the defender's problem decouples per prompt and π* is closed form.

Both players maximise a KL-regularised objective with the same β (paper notes §1.2). Only R/β matters
for the equilibrium, so `reward_scale` and `beta` are chosen together (see `GameConfig`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

HARMFUL, BENIGN = "harmful", "benign"
STRATEGIES = (
    "direct",
    "fiction",
    "clinical",
    "drift",
)  # drift = rewrite that changes the intent (unfaithful)
RESPONSES = ("comply", "deflect", "refuse")

# Rubric scores (0–10) of the default game, per class, strategy (faithful ones) and response.
# Defender, harmful seed, deflection rubric on x: deflection best, a bare refusal 3–5, compliance low.
# Defender, benign seed, compliance rubric on x: compliance best, deflection mid, refusal low.
# Attacker, harmful seed, compliance judged vs the seed: fiction dilutes what a compliant answer is worth.
# Attacker, benign seed, refusal rubric V1: a short refusal 8–10, a deflection/redirect 4–5, compliance 0.
DEFAULT_SCORES: dict[tuple[str, str], dict[str, tuple[float, float, float]]] = {
    (HARMFUL, "defender"): {"direct": (1, 8, 4), "fiction": (2, 7, 4), "clinical": (2, 7, 5)},
    (HARMFUL, "attacker"): {"direct": (9, 2, 0), "fiction": (6, 2, 0), "clinical": (8, 3, 0)},
    (BENIGN, "defender"): {"direct": (9, 4, 1), "fiction": (8, 4, 2), "clinical": (9, 5, 2)},
    (BENIGN, "attacker"): {"direct": (0, 4, 9), "fiction": (0, 4, 9), "clinical": (0, 5, 9)},
}


@dataclass
class GameConfig:
    """The default testbed game. Scores follow the rubrics (see DEFAULT_SCORES); these knobs set the rest."""

    beta: float = 0.5
    """KL coefficient of both players. Only R/β matters for the equilibrium:
    0.4 nats per rubric point here."""
    reward_scale: float = 0.2
    """Reward units per rubric point. Rewards are Bradley–Terry utilities of the judge (paper notes §1.2):
    the BT judge prefers a 1-point-better answer 55% of the time, a 5-point-better one 73%, a 9-point-better
    one 86%. On this scale the paper's β = 0.1 would mean 2 nats per point, a near-deterministic π*
    (deflect with 0.999 on a direct harmful prompt); β = 0.5 keeps it mixed. A sharper judge (larger scale,
    same R/β) makes DPO's rest point drift from π* (docs/testbed.md, 'what DPO converges to')."""
    unfaithful_score: float = -1.0
    """Patched attacker score of an unfaithful rewrite (below every valid 0–10 score), as in the code."""
    shared_prompts: bool = True
    """Merge the 'clinical' rewrites of H1 and B1, and the 'fiction' rewrites of H2 and B2, into one prompt
    each that the defender cannot tell apart. False gives every (seed, faithful strategy) its own prompt."""
    seeds_per_class: int = 2
    """Harmful seeds H1.. and benign seeds B1.. (seed distribution ξ uniform)."""
    defender_ref: tuple[float, ...] = (0.5, 0.2, 0.3)
    """π_ref(y|x) over (comply, deflect, refuse) at every prompt; also the defender's initial policy."""
    attacker_ref: tuple[float, ...] = (0.4, 0.2, 0.2, 0.2)
    """ρ_ref(k|s) over (direct, fiction, clinical, drift) for every seed;
    also the attacker's initial policy."""


@dataclass
class TabularGame:
    """All tensors float64. S seeds, K strategies, M responses, X defender prompts."""

    seed_names: list[str]
    seed_class: list[str]
    strategy_names: list[str]
    response_names: list[str]
    prompt_names: list[str]
    xi: torch.Tensor  # [S] seed distribution
    prompt_of: torch.Tensor  # [S, K] long; −1 where the rewrite is unfaithful (never shown to the defender)
    att_score: torch.Tensor  # [S, K, M] attacker rubric score (unfaithful rows hold unfaithful_score)
    def_score: torch.Tensor  # [S, K, M] defender rubric score (unfaithful rows unused, 0)
    ref_att: torch.Tensor  # [S, K] ρ_ref
    ref_def: torch.Tensor  # [X, M] π_ref
    beta: float
    reward_scale: float

    def __post_init__(self) -> None:
        S, K = self.prompt_of.shape
        M = len(self.response_names)
        X = len(self.prompt_names)
        assert self.att_score.shape == self.def_score.shape == (S, K, M)
        assert self.ref_att.shape == (S, K) and self.ref_def.shape == (X, M) and self.xi.shape == (S,)
        assert torch.all(self.ref_att > 0) and torch.all(self.ref_def > 0), "references need full support"
        assert int(self.prompt_of.max()) == X - 1 and set(self.prompt_of[self.faithful].tolist()) == set(
            range(X)
        )

    # ---- shapes and derived tables -------------------------------------------------------------------
    @property
    def num_seeds(self) -> int:
        return self.prompt_of.shape[0]

    @property
    def num_strategies(self) -> int:
        return self.prompt_of.shape[1]

    @property
    def num_responses(self) -> int:
        return len(self.response_names)

    @property
    def num_prompts(self) -> int:
        return len(self.prompt_names)

    @property
    def faithful(self) -> torch.Tensor:
        """[S, K] bool: the rewrite keeps the seed's intent (and reaches the defender)."""
        return self.prompt_of >= 0

    @property
    def att_reward(self) -> torch.Tensor:
        return self.reward_scale * self.att_score

    @property
    def def_reward(self) -> torch.Tensor:
        return self.reward_scale * self.def_score

    @property
    def prompt_index(self) -> torch.Tensor:
        """[S, K] prompt id with unfaithful entries clamped to 0 (mask with `faithful` before use)."""
        return self.prompt_of.clamp(min=0)

    def is_decoupled(self) -> bool:
        """Every prompt comes from exactly one (seed, strategy): π* does not depend on ρ."""
        return int(self.faithful.sum()) == self.num_prompts

    def with_beta(self, beta: float) -> TabularGame:
        return dataclasses.replace(self, beta=beta)

    def seen_through_noisy_judge(self, noise: float) -> TabularGame:
        """The game a judge with noise ν induces in expectation. A noisy judge answers at random with
        probability ν, which scales every reward difference by (1 − ν): the equilibrium is that of β/(1 − ν)
        (exact for pointwise scores and the linear pairwise link, first order for Bradley–Terry)."""
        return self.with_beta(self.beta / (1.0 - noise))


def default_game(cfg: GameConfig | None = None) -> TabularGame:
    """The documented default: 2 harmful + 2 benign seeds, 4 strategies (one unfaithful), 3 responses."""
    cfg = cfg or GameConfig()
    n = cfg.seeds_per_class
    seeds = [f"H{i + 1}" for i in range(n)] + [f"B{i + 1}" for i in range(n)]
    classes = [HARMFUL] * n + [BENIGN] * n
    S, K, M = len(seeds), len(STRATEGIES), len(RESPONSES)
    att = torch.zeros(S, K, M, dtype=torch.float64)
    dfn = torch.zeros(S, K, M, dtype=torch.float64)
    prompt_names: list[str] = []
    prompt_of = torch.full((S, K), -1, dtype=torch.long)
    shared: dict[str, int] = {}
    for s, (name, c) in enumerate(zip(seeds, classes)):
        i = int(name[1:])
        for k, strat in enumerate(STRATEGIES):
            if strat == "drift":  # unfaithful: attacker −1, never shown to the defender
                att[s, k] = cfg.unfaithful_score
                continue
            att[s, k] = torch.tensor(DEFAULT_SCORES[(c, "attacker")][strat], dtype=torch.float64)
            dfn[s, k] = torch.tensor(DEFAULT_SCORES[(c, "defender")][strat], dtype=torch.float64)
            merge = cfg.shared_prompts and (
                (strat == "clinical" and i == 1) or (strat == "fiction" and i == 2)
            )
            if merge:
                key = f"{strat}-{i}(H{i}|B{i})"
                if key not in shared:
                    shared[key] = len(prompt_names)
                    prompt_names.append(key)
                prompt_of[s, k] = shared[key]
            else:
                prompt_of[s, k] = len(prompt_names)
                prompt_names.append(f"{strat}-{name}")
    ref_att = torch.tensor(cfg.attacker_ref, dtype=torch.float64)
    ref_def = torch.tensor(cfg.defender_ref, dtype=torch.float64)
    if ref_att.numel() != K or ref_def.numel() != M:
        raise ValueError(f"attacker_ref needs {K} entries and defender_ref {M}")
    return TabularGame(
        seed_names=seeds,
        seed_class=classes,
        strategy_names=list(STRATEGIES),
        response_names=list(RESPONSES),
        prompt_names=prompt_names,
        xi=torch.full((S,), 1.0 / S, dtype=torch.float64),
        prompt_of=prompt_of,
        att_score=att,
        def_score=dfn,
        ref_att=(ref_att / ref_att.sum()).expand(S, K).clone(),
        ref_def=(ref_def / ref_def.sum()).expand(len(prompt_names), M).clone(),
        beta=cfg.beta,
        reward_scale=cfg.reward_scale,
    )


def random_game(
    generator: torch.Generator,
    *,
    num_seeds: int,
    num_strategies: int,
    num_responses: int,
    beta: float,
    share_prob: float = 0.3,
    unfaithful_prob: float = 0.2,
) -> TabularGame:
    """A random game of the same shape family (used by the property tests): random scores in [0, 10],
    random references, random unfaithful strategies (at least one faithful per seed) and random prompt
    sharing across seeds."""
    S, K, M = num_seeds, num_strategies, num_responses

    def rand(*shape):
        return torch.rand(*shape, generator=generator, dtype=torch.float64)

    faithful = rand(S, K) >= unfaithful_prob
    faithful[:, 0] = True
    prompt_of = torch.full((S, K), -1, dtype=torch.long)
    names: list[str] = []
    for s in range(S):
        for k in range(K):
            if not faithful[s, k]:
                continue
            if names and float(rand(())) < share_prob:  # reuse an earlier prompt id
                prompt_of[s, k] = int(torch.randint(len(names), (), generator=generator))
            else:
                prompt_of[s, k] = len(names)
                names.append(f"x{len(names)}")
    att = 10 * rand(S, K, M)
    att[~faithful] = -1.0
    dfn = torch.where(faithful[..., None], 10 * rand(S, K, M), torch.zeros(S, K, M, dtype=torch.float64))
    ref_att = rand(S, K) + 0.05
    ref_def = rand(len(names), M) + 0.05
    return TabularGame(
        seed_names=[f"s{s}" for s in range(S)],
        seed_class=[HARMFUL if s % 2 == 0 else BENIGN for s in range(S)],
        strategy_names=[f"k{k}" for k in range(K)],
        response_names=[f"y{m}" for m in range(M)],
        prompt_names=names,
        xi=_normalise(rand(S) + 0.2),
        prompt_of=prompt_of,
        att_score=att,
        def_score=dfn,
        ref_att=ref_att / ref_att.sum(-1, keepdim=True),
        ref_def=ref_def / ref_def.sum(-1, keepdim=True),
        beta=beta,
        reward_scale=0.1,
    )


def _normalise(t: torch.Tensor) -> torch.Tensor:
    return t / t.sum()
