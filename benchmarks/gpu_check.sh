#!/usr/bin/env bash
# One call on a CUDA machine: every GPU figure of issue 20, in one markdown report, in at most ~6 minutes.
#
#   bash benchmarks/gpu_check.sh [REPORT.md]        # default: benchmarks/gpu_report.md
#
# From a bare machine that has torch (and CUDA): missing Python packages are installed from the wheels in
# benchmarks/wheels/ (no network needed; see docs/performance.md for the `pip download` commands that fill it).
# Nothing is downloaded at run time: the model is `model=sdxl_arch` (SDXL's architecture, random weights).
# Each part has its own hard time limit (`timeout -k 5`: SIGTERM, then SIGKILL 5 s later); a part that fails or
# runs out of time is marked so in the report and the rest still run.
#
# Without CUDA it refuses in one line (exit 2). GPU_CHECK_ALLOW_CPU=1 runs every part on the CPU with the tiny
# model at 64x64 instead: a dry run that proves the script, not a measurement. GPU_CHECK_PARTS="a b" runs only
# the parts named (install always runs).
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPORT="$(realpath -m "${1:-$ROOT/benchmarks/gpu_report.md}")"
WHEELS="${GPU_CHECK_WHEELS:-$ROOT/benchmarks/wheels}"
PYTHON="${PYTHON:-python3}"
cd "$ROOT" || exit 2

if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    if [ "${GPU_CHECK_ALLOW_CPU:-0}" != "1" ]; then
        echo "gpu_check: needs a CUDA GPU (torch.cuda.is_available() is False or torch is missing); nothing was run" >&2
        exit 2
    fi
    DRY=1
else
    DRY=0
fi

export HF_HUB_OFFLINE=1 PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
SCRATCH="$(mktemp -d /tmp/gpu_check.XXXXXX)"
trap 'rm -rf "$SCRATCH"' EXIT
# Inductor's caches for this check only: the first compiled run is a cold compile, the second reuses it.
export TORCHINDUCTOR_CACHE_DIR="$SCRATCH/inductor"

# Time limits in seconds (each part's own); the sum is the worst case. Override with GPU_CHECK_LIMIT_<PART>.
declare -A LIMIT=([install]=60 [eager]=50 [compiled]=100 [compiled_again]=45 [compile_stop]=45
                  [runner_vs_plain]=40 [cli_vs_loop]=80 [overhead]=60)
if [ "$DRY" = 1 ]; then
    MODEL=(--model tiny --size 64)
    RVP=(--model tiny --size 64 --seeds 2 --steps 2 --runs 1)
    GPU=(--allow-cpu --model tiny --size 64 --images 2 --steps 2)
    STEPS=(--steps 1,2)
    for part in "${!LIMIT[@]}"; do LIMIT[$part]=900; done  # a busy 2-core CPU compiles for minutes
else
    MODEL=(--model sdxl_arch --size 1024)
    RVP=(--model sdxl_arch --size 1024 --seeds 4 --steps 20 --runs 1)
    GPU=(--model sdxl_arch --size 1024 --images 2 --steps 30)
    STEPS=()  # the seed's own sweep: 10..90 steps
fi
for part in "${!LIMIT[@]}"; do
    override="GPU_CHECK_LIMIT_${part^^}"
    LIMIT[$part]="${!override:-${LIMIT[$part]}}"
done

STARTED=$(date +%s)
SECTIONS="$SCRATCH/sections.md"
: > "$SECTIONS"

# part NAME TITLE COMMAND...: run with its hard limit, keep the last lines of its output for the report.
part() {
    local name="$1" title="$2"; shift 2
    local out="$SCRATCH/$name.out" began status code
    if [ -n "${GPU_CHECK_PARTS:-}" ] && [ "$name" != install ] && [[ " $GPU_CHECK_PARTS " != *" $name "* ]]; then
        return 0  # GPU_CHECK_PARTS="compiled compile_stop": only those parts (to re-run one)
    fi
    began=$(date +%s)
    echo "gpu_check: $name (limit ${LIMIT[$name]} s) ..." >&2
    timeout -k 5 "${LIMIT[$name]}" "$@" > "$out" 2>&1
    code=$?
    case $code in
        0) status="ok" ;;
        124|137) status="TIMED OUT after ${LIMIT[$name]} s" ;;
        *) status="failed (exit $code)" ;;
    esac
    {
        echo "## $title"
        echo
        echo "\`$*\` - **$status**, $(( $(date +%s) - began )) s"
        echo
        echo '```'
        tail -n 40 "$out"
        echo '```'
        echo
    } >> "$SECTIONS"
    echo "gpu_check: $name $status" >&2
}

install_missing() {
    if "$PYTHON" -c "import sweep.app, diffusers, transformers, hydra, omegaconf, peft, pandas, matplotlib, skimage, scipy" 2>/dev/null; then
        echo "everything importable already; nothing installed"
        return 0
    fi
    if [ ! -d "$WHEELS" ]; then
        echo "missing packages and no $WHEELS: see docs/performance.md (GPU check) for the pip download commands"
        return 1
    fi
    # The project with its dependencies, offline, from the wheels beside this script (hatchling among them);
    # if that fails (no build backend), the dependencies alone: PYTHONPATH=src runs this checkout anyway.
    "$PYTHON" -m pip install --no-index --find-links "$WHEELS" -e "$ROOT" \
        || "$PYTHON" -m pip install --no-index --find-links "$WHEELS" diffusers transformers accelerate safetensors \
            peft "hydra-core>=1.3,<1.4" "omegaconf>=2.3,<2.4" pandas matplotlib pillow scikit-image scipy tqdm
    "$PYTHON" -c "import sweep.app, diffusers, hydra, peft, skimage" && echo "installed from $WHEELS"
}

export -f install_missing
export PYTHON WHEELS ROOT
part install "Install (offline, from benchmarks/wheels)" bash -c install_missing
part eager "Eager: bf16 and fp16, batch 1 and auto (gpu_sdxl.py)" \
    "$PYTHON" benchmarks/gpu_sdxl.py "${GPU[@]}" --dtypes bf16,fp16 --compile off --batch-sizes 1,auto
part compiled "Compiled bf16, cold inductor cache: first image and s/image (gpu_sdxl.py)" \
    "$PYTHON" benchmarks/gpu_sdxl.py "${GPU[@]}" --dtypes bf16 --compile on --batch-sizes 1
part compiled_again "Compiled bf16 again, a new process on the warm cache (gpu_sdxl.py)" \
    "$PYTHON" benchmarks/gpu_sdxl.py "${GPU[@]}" --dtypes bf16 --compile on --batch-sizes 1
part compile_stop "SIGTERM in the middle of a compile (compile_stop.py)" \
    "$PYTHON" benchmarks/compile_stop.py "${MODEL[@]}"
part runner_vs_plain "Runner vs the plain loop, one process (runner_vs_plain.py)" \
    "$PYTHON" benchmarks/runner_vs_plain.py "${RVP[@]}"
part cli_vs_loop "The seed's sweep through the CLI vs a hand-loop script, whole processes (cli_vs_loop.py)" \
    "$PYTHON" benchmarks/cli_vs_loop.py "${MODEL[@]}" ${STEPS[@]+"${STEPS[@]}"} --pairs 1
# The per-image overhead harness (benchmarks/overhead.py: the real runner and writer around a stand-in
# pipeline), with its images on the GPU where it can put them there.
if [ -f benchmarks/overhead.py ]; then
    OVERHEAD=("$PYTHON" benchmarks/overhead.py)
    if [ "$DRY" = 0 ] && "$PYTHON" benchmarks/overhead.py --help 2>/dev/null | grep -q -- "--device"; then
        OVERHEAD+=(--device cuda)
    fi
    part overhead "Per-image overhead of the runner and writer (overhead.py)" "${OVERHEAD[@]}"
else
    printf '## Per-image overhead (overhead.py)\n\nbenchmarks/overhead.py is not in this checkout.\n\n' >> "$SECTIONS"
fi

{
    echo "# GPU check ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
    echo
    if [ "$DRY" = 1 ]; then
        echo "**Dry run on the CPU (GPU_CHECK_ALLOW_CPU=1, model=tiny at 64x64): proves the script, measures nothing.**"
        echo
    fi
    echo "- machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1 || echo 'no nvidia-smi'); $(nproc) CPU cores"
    echo "- software: $("$PYTHON" -c 'import torch, diffusers, transformers; print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), diffusers {diffusers.__version__}, transformers {transformers.__version__}")' 2>/dev/null)"
    echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown); whole check: $(( $(date +%s) - STARTED )) s"
    echo "- targets (issue 20): CLI <= 0.8x the hand loop (whole process); seconds fit intercept <= 0.6 s/image;"
    echo "  compiled bf16 first image <= 90 s, <= 20 s on the warm cache, <= 1.0 s/image at batch 1; stop <= 5 s;"
    echo "  overhead_ms_per_image <= 50"
    echo
    cat "$SECTIONS"
} > "$REPORT"
echo "gpu_check: report in $REPORT ($(( $(date +%s) - STARTED )) s)"
