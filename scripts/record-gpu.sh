#!/usr/bin/env bash
# Record what the probe's GPU section sees on a real NVIDIA machine, as a new fixture:
#   bash scripts/record-gpu.sh fixtures/gpu/recorded-$(date +%Y%m%d)
# Needs only python3 (standard library) and, where present, nvidia-smi. No TensorFlow.
set -uo pipefail
out="${1:?usage: record-gpu.sh OUT_DIR}"
mkdir -p "$out"
here="$(cd "$(dirname "$0")/.." && pwd)"
python3 - "$here/envcheck/probe/probe.py" > "$out/probe-gpu.json" <<'PY'
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("probe", sys.argv[1])
probe = importlib.util.module_from_spec(spec); spec.loader.exec_module(probe)
print(json.dumps({"gpu": probe.gpu_fingerprint(), "nvml": probe.nvml_fingerprint(),
                  "cuda_libraries": {"installed": probe.installed_libraries()}}, indent=1, default=str))
PY
fields=$(python3 - "$here/envcheck/probe/probe.py" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("probe", sys.argv[1])
probe = importlib.util.module_from_spec(spec); spec.loader.exec_module(probe)
print(",".join(q for q, _ in probe.SMI_FIELDS))
PY
)
if command -v nvidia-smi >/dev/null; then
  nvidia-smi -q > "$out/nvidia-smi-q.txt" 2>&1
  nvidia-smi --query-gpu="$fields" --format=csv > "$out/nvidia-smi-query.csv" 2>&1
  nvidia-smi > "$out/nvidia-smi.txt" 2>&1
fi
cat /proc/driver/nvidia/version > "$out/proc-driver-nvidia-version.txt" 2>&1
echo "recorded into $out:"; ls -l "$out"
