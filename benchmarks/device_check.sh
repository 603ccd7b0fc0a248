#!/usr/bin/env bash
# The checks that need an accelerator, in one script, well under 8 minutes on one CUDA device:
#   1. the GPU tests (pytest -m gpu);
#   2. the engineering figures on the device (benchmarks/engineering.py --device ...);
#   3. a two-stage fit on the device: the LOGO world model, then LOGO+MACQL rolling out in it, with
#      updates/s and rollout transitions/s (benchmarks/two_stage.py);
#   4. DiscreteMACQL's opt-in torch.compile of its losses against eager: compile time, updates/s and parameter
#      agreement (benchmarks/compile_losses.py).
# Results land where docs/results.md reads them: benchmarks/results/engineering/cuda/ and
# benchmarks/results/device_check/cuda/ (plus the pytest log there). With --device cpu (a smoke test of the script,
# about 2 minutes on 2 idle cores) the figures go to benchmarks/results/quick/ and the rest to device_check/cpu/,
# which git ignores.
#
#   bash benchmarks/device_check.sh                 # on a machine with a CUDA device
#   bash benchmarks/device_check.sh --device cpu    # the same steps on the CPU (small sizes), to test the script
set -euo pipefail
cd "$(dirname "$0")/.."

device=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    *) echo "usage: $0 [--device cuda|cpu]" >&2; exit 2 ;;
  esac
done
if [ "$device" = cuda ] && ! python -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "device_check: --device cuda but torch sees no CUDA device" >&2
  exit 2
fi
out="benchmarks/results/device_check/$device"
mkdir -p "$out"
start=$SECONDS

# the datasets the figures and the fits read (collected once, reused when present)
[ -e data/mpe/simple_spread_v3/medium.zarr ] || logo collect --config configs/collect/mpe_simple_spread_v3_medium.yaml
[ -e data/smax/3m/medium.zarr ] || logo collect --config configs/collect/smax_3m_medium.yaml

echo "== 1/4 pytest -m gpu"
# on the CPU the GPU tests skip themselves; pytest's exit 5 (none ran) is not a failure here
python -m pytest -m gpu -q -p no:cacheprovider 2>&1 | tee "$out/pytest_gpu.log" || [ "${PIPESTATUS[0]}" = 5 ]

echo "== 2/4 engineering figures on $device"
# every figure but update_speed, which checks out an earlier revision with git worktree (a device machine may get
# the files without their git history) and runs 15 fresh fits (minutes of the 8 this script has)
figures=(lightning_overhead sampler_share world_model_cost world_model_pareto dataset_load)
if [ "$device" = cuda ]; then
  python benchmarks/engineering.py --device cuda --force --only "${figures[@]}"
else
  OMP_NUM_THREADS=1 python benchmarks/engineering.py --device cpu --quick --force --only "${figures[@]}"
fi

echo "== 3/4 two-stage fit on $device"
if [ "$device" = cuda ]; then
  python benchmarks/two_stage.py --device cuda --out "$out"
else
  OMP_NUM_THREADS=1 python benchmarks/two_stage.py --device cpu --out "$out" --world_model_steps 150 \
    --policy_steps 300 --warmup 50
fi

echo "== 4/4 torch.compile of DiscreteMACQL's losses vs eager on $device"
if [ "$device" = cuda ]; then
  python benchmarks/compile_losses.py --device cuda --out "$out/compile_losses.json"
else
  OMP_NUM_THREADS=1 python benchmarks/compile_losses.py --device cpu --out "$out/compile_losses.json" --updates 50 \
    --rounds 2 --round_updates 20
fi
figures=benchmarks/results/engineering/$device
[ "$device" = cuda ] || figures=benchmarks/results/quick/engineering/$device
echo "device_check: done in $((SECONDS - start)) s; results in $out and $figures"
