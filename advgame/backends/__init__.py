"""Generation backends: in-process HF models, OpenAI-compatible endpoints and vLLM behind one interface.

Names are imported on first use: the vLLM backends import `vllm` only when constructed (the `vllm` extra),
and importing this package pulls in neither vLLM nor torch.
"""

from advgame.lazy import lazy_exports

_HOMES = {
    "GenerationBackend": "base",
    "HFBackend": "hf",
    "OpenAIChatBackend": "openai_compat",
    "VLLMEngineBackend": "vllm_engine",
    "VLLMServerBackend": "vllm_server",
    "WeightSyncError": "vllm_common",
    "EngineSync": "weight_sync",
}
__all__ = list(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)
