#!/usr/bin/env bash
# Peak memory of a checkpoint-axis sweep against one checkpoint alone (issue 25): the previous checkpoint must be
# released before the next loads, so two checkpoints in one run should peak where one does.
#
#   bash benchmarks/checkpoint_memory.sh            # CUDA: two 6.5 GB SDXL-architecture folders (random weights)
#   CPU=1 bash benchmarks/checkpoint_memory.sh      # CPU: tiny and tiny-alt against tiny (proves the script only)
#
# Peak GPU memory is nvidia-smi's largest reading (every 100 ms, CUDA context included); peak RSS is the sweep
# process's ru_maxrss. Needs the project importable (PYTHONPATH=src) and nothing from the network.
set -u -o pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
export HF_HUB_OFFLINE=1 PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
SCRATCH="$(mktemp -d /tmp/checkpoint_memory.XXXXXX)"
trap 'rm -rf "$SCRATCH"' EXIT
cd "$SCRATCH" || exit 2

if [ "${CPU:-0}" = 1 ]; then
    TWO="[tiny,tiny-alt]"; ONE="[tiny]"; SIZE=(height=128 width=128)
else
    "$PYTHON" - "$SCRATCH" <<'PY' || exit 2
import sys, torch
from sweep.models import build_sdxl_arch_pipeline
if not torch.cuda.is_available():
    sys.exit("checkpoint_memory: needs CUDA (CPU=1 for a dry run on the CPU)")
build_sdxl_arch_pipeline("cuda", torch.bfloat16).save_pretrained(f"{sys.argv[1]}/big")
PY
    cp -r "$SCRATCH/big" "$SCRATCH/big2"
    TWO="[$SCRATCH/big,$SCRATCH/big2]"; ONE="[$SCRATCH/big]"; SIZE=(height=1024 width=1024)
fi

measure() {  # NAME CHECKPOINTS
    local smi=""
    if command -v nvidia-smi > /dev/null && [ "${CPU:-0}" != 1 ]; then
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$SCRATCH/smi_$1" &
        smi=$!
    fi
    "$PYTHON" -c "
import resource, subprocess, sys
code = subprocess.run([sys.executable, '-m', 'sweep', *sys.argv[1:]], stdout=subprocess.DEVNULL).returncode
print(f'rc {code}, peak RSS {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024} MiB', end='')
" sweep=checkpoints num_inference_steps=10 "${SIZE[@]}" 'sweep.grid.seed=[1]' 'sweep.grid.guidance_scale=[5]' \
        "sweep.grid.checkpoint=$2" "hydra.run.dir=$SCRATCH/run_$1"
    if [ -n "$smi" ]; then
        kill "$smi"; wait "$smi" 2> /dev/null
        echo -n ", peak GPU $(sort -n "$SCRATCH/smi_$1" | tail -1) MiB"
    fi
    echo ", $(grep -o '"pipeline_loads": [0-9]*' "$SCRATCH/run_$1/status.json"): $1 checkpoint(s) $2"
}
measure two "$TWO"
measure one "$ONE"
