"""Model loading: hub ids, local directories, GGUF files, SmolLM2, and tiny test models."""

from advgame.lazy import lazy_exports

_HOMES = {
    "ModelNotFoundError": "gguf",
    "cache_root": "gguf",
    "converted_dir": "gguf",
    "smollm2_gguf": "gguf",
    "load_model": "loading",
    "make_trainable": "loading",
    "resolve_device": "loading",
    "trainable_parameters": "loading",
    "tiny_model": "tiny",
    "tiny_tokenizer": "tiny",
}
__all__ = list(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)
