"""Build a judge from its config: `build_judge(cfg, backend)`.

kind        judge
heuristic   HeuristicJudge (offline rules + WordLlama similarity)
openai      LLMJudge over OpenAIChatBackend(cfg.base_urls, cfg.model, cfg.api_key_env, ...)
model       LLMJudge over the backend the caller passes (e.g. an HFBackend on a loaded model)

"""

from __future__ import annotations

from advgame.backends.base import GenerationBackend
from advgame.config.schema import JudgeConfig, SamplingConfig
from advgame.judges.base import Judge
from advgame.judges.heuristic import HeuristicJudge
from advgame.judges.llm import LLMJudge


def judge_sampling(cfg: JudgeConfig) -> SamplingConfig:
    """The decoding settings a judge's LM is sampled with."""
    return SamplingConfig(
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
    )


def build_judge(cfg: JudgeConfig, backend: GenerationBackend | None = None, *, seed: int | None = 0) -> Judge:
    """The judge `cfg` describes. kind=model needs `backend`; `seed` makes LLM judges' nonces and sampling
    seeds reproducible (pass the run seed; None draws them from the OS)."""
    if cfg.kind == "heuristic":
        return HeuristicJudge()
    if cfg.kind == "openai":
        from advgame.backends.openai_compat import OpenAIChatBackend  # imports the openai client lazily

        backend = OpenAIChatBackend(
            cfg.base_urls,
            cfg.model,
            api_key_env=cfg.api_key_env,
            max_concurrency=cfg.max_concurrency,
            timeout_s=cfg.timeout_s,
            max_retries=cfg.max_retries,
        )
    elif cfg.kind == "model":
        if backend is None:
            raise ValueError(
                f"judge kind=model ({cfg.model!r}) needs a backend: load the model and pass e.g. an HFBackend"
            )
    else:
        raise ValueError(f"unknown judge kind {cfg.kind!r}")
    order_swap = cfg.order_swap
    name = f"llm:{backend.name}:{cfg.mode}" + (":swap" if order_swap and cfg.mode == "pairwise" else "")
    return LLMJudge(backend, judge_sampling(cfg), name=name, order_swap=order_swap, seed=seed)
