#!/usr/bin/env bash
# GPU smoke test (≤ 8 minutes, nothing fetched from a network): tiny random models on CUDA with bf16
# autocast over fp32 master weights; sampler log-probs; one DPO-MD and one GRPO game step; FSDP2 on one
# process with a bf16 MixedPrecisionPolicy; vLLM generation if vllm is installed. One PASS/FAIL/SKIP line
# per check (see bench/gpu_smoke.py); exit status 0 only when nothing failed.
#
#   bash bench/gpu_smoke.sh            # on a CUDA machine; prints "no CUDA: skipped" and exits 0 elsewhere
#   bash bench/gpu_smoke.sh --device cpu   # the same checks on CPU: tests this script's logic, not CUDA
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [[ " $* " != *" --device cpu "* ]] && ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "no CUDA: skipped"
  exit 0
fi
exec timeout --signal=TERM --kill-after=20 480 "$PY" bench/gpu_smoke.py "$@"
