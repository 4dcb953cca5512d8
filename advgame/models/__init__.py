"""Model loading: hub ids, local directories, GGUF files, SmolLM2, and tiny test models."""

from advgame.models.gguf import ModelNotFoundError, cache_root, converted_dir, smollm2_gguf
from advgame.models.loading import load_model, make_trainable, resolve_device, trainable_parameters
from advgame.models.tiny import tiny_model, tiny_tokenizer

__all__ = [
    "ModelNotFoundError", "cache_root", "converted_dir", "load_model", "make_trainable", "resolve_device",
    "smollm2_gguf", "tiny_model", "tiny_tokenizer", "trainable_parameters",
]
