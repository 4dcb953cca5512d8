"""Generation backends: in-process HF models and OpenAI-compatible endpoints behind one interface."""

from advgame.backends.base import GenerationBackend
from advgame.backends.hf import HFBackend

__all__ = ["GenerationBackend", "HFBackend"]
