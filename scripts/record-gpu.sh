#!/usr/bin/env bash
# Record what the probe's GPU section sees on a real NVIDIA machine, as a new fixture:
#   bash scripts/record-gpu.sh fixtures/gpu/recorded-$(date +%Y%m%d)
# Needs only python3 (standard library) and, where present, nvidia-smi. No TensorFlow.
set -uo pipefail
out="${1:?usage: record-gpu.sh OUT_DIR}"
mkdir -p "$out"
here="$(cd "$(dirname "$0")/.." && pwd)"
export PYTHONPATH="$here/envcheck/probe"  # the probe's own modules, as the zipapp holds them
python3 - > "$out/probe-gpu.json" <<'PY'
import json
from envcheck_probe import gpu, libraries, nvml
print(json.dumps({"gpu": gpu.gpu_fingerprint(), "nvml": nvml.nvml_fingerprint(),
                  "cuda_libraries": {"installed": libraries.installed_libraries()}}, indent=1, default=str))
PY
fields=$(python3 -c 'from envcheck_probe import smi; print(",".join(q for q, _ in smi.SMI_FIELDS))')
if command -v nvidia-smi >/dev/null; then
  nvidia-smi -q > "$out/nvidia-smi-q.txt" 2>&1
  nvidia-smi --query-gpu="$fields" --format=csv > "$out/nvidia-smi-query.csv" 2>&1
  nvidia-smi > "$out/nvidia-smi.txt" 2>&1
fi
cat /proc/driver/nvidia/version > "$out/proc-driver-nvidia-version.txt" 2>&1
echo "recorded into $out:"; ls -l "$out"
