"""Where a model of `advgame eval` / `advgame redteam` comes from: a local model or an OpenAI-compatible
endpoint.

One section type for every such model (the model scored or attacked, the attacker, the judge); it is read
by `advgame.targets.source_backend`. Give `path` (local) or `url` with `model` (remote), not both. An
endpoint's API key is read from the environment variable `api_key_env`, never from the config, and is
never logged.
"""

from __future__ import annotations

from pydantic import Field

from advgame.config.schema import Section


class ModelSource(Section):
    """A local model, or a model at an OpenAI-compatible endpoint."""

    path: str | None = Field(
        None,
        description="Local model: an alias (smollm2, tiny-llama), an HF dir or hub id, a .gguf file, an "
        "advgame run dir or checkpoint, or a peft adapter dir.",
    )
    adapter: str | None = Field(None, description="LoRA adapter dir applied on top of `path`.")
    base_model: str | None = Field(
        None,
        description="Base model of a peft adapter dir given as `path`, when its adapter_config.json names "
        "none.",
    )
    url: str | None = Field(None, description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1.")
    model: str | None = Field(None, description="Model name at `url`.")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the endpoint's API key."
    )
    concurrency: int = Field(4, ge=1, description="Endpoint: requests in flight.")
    retries: int = Field(3, ge=0, description="Endpoint: retries of a failed request (timeouts, 429, 5xx).")
    timeout_s: float = Field(120.0, gt=0, description="Endpoint: seconds per attempt.")

    @property
    def given(self) -> bool:
        return bool(self.path or self.url)
