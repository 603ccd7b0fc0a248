#!/usr/bin/env bash
# Issue 20's continuous-action MPC measurement on MaMuJoCo HalfCheetah-2x3, learned medium tier, as one
# incremental chain: every step is skipped when its output exists, so a killed run continues where it stopped
# (a fit interrupted midway starts that fit again). One torch thread per process.
#   1. the learned tiers (TD3 behaviour training, about 25 min on one core; skipped if the dataset exists);
#   2. the LOGO and ensemble-7 world models, 4000 updates each (the matrix's budget), in parallel;
#   3. LOGO+MACQL (ContinuousMACQL rolling out in the LOGO model), 5000 updates, seeds 0 1 2 at once;
#   4. benchmarks/mpc.py, two at once: the policy alone and MPC in the LOGO model with the lambda / terminal-value
#      rows and a K x H_p sweep over K in {16, 64} and H_p in {1, 5} (SMAX 3m's sweep found K = 256 and H_p = 10
#      no better at 4-8x the cost), to benchmarks/results/mpc/mamujoco_halfcheetah_2x3.json; the policy alone and
#      MPC in the ensemble, to ..._ensemble.json. 4 episodes of 1000 steps per row and seed, in 4 parallel copies.
#
#   bash benchmarks/mpc_halfcheetah.sh [RUN_DIR]    # default runs/mpc_halfcheetah
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
R=${1:-runs/mpc_halfcheetah}
D=data/mamujoco/HalfCheetah-2x3/learned/medium.zarr
C=configs/mamujoco/HalfCheetah-2x3
CKPT='[{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_last": true}}]'

[ -e "$D" ] || logo tiers --config configs/tiers/mamujoco_halfcheetah_2x3.yaml

wm() {  # name, extra configs...
  local name=$1; shift
  [ -e "$R/wm/$name/done" ] && return 0  # written after the fit (early stopping may end it before 16 epochs)
  rm -rf "$R/wm/$name"
  logo fit --config $C/world_model.yaml "$@" --trainer.max_epochs 16 \
    --trainer.default_root_dir $R/wm --trainer.logger.init_args.save_dir $R/wm > "$R/logs/wm_$name.log" 2>&1
  touch "$R/wm/$name/done"
}
finished() {  # checkpoint, updates: it exists and holds at least that many updates (last.ckpt is saved every epoch)
  [ -e "$1" ] && python -c "import sys, torch; sys.exit(torch.load('$1', map_location='cpu', weights_only=False)['global_step'] < $2)"
}
policy() {  # seed
  local s=$1
  finished "$R/policy/seed$s/checkpoints/last.ckpt" 5000 && return 0
  rm -rf "$R/policy/seed$s"
  logo fit --config $C/policy.yaml --seed_everything "$s" --trainer.max_epochs 10 \
    --trainer.default_root_dir $R/policy --trainer.logger.init_args.save_dir $R/policy \
    --trainer.logger.init_args.version "seed$s" --trainer.callbacks "$CKPT" \
    --data.init_args.synthetic.init_args.world_model $R/wm/logo/checkpoints/best.ckpt > "$R/logs/policy_seed$s.log" 2>&1
}
mkdir -p "$R/logs"
wm logo & a=$!; wm ensemble --config configs/world_model/ensemble.yaml & b=$!; wait $a; wait $b
policy 0 & a=$!; policy 1 & b=$!; policy 2 & c=$!; wait $a; wait $b; wait $c
out=benchmarks/results/mpc/mamujoco_halfcheetah_2x3
run() {  # suffix, world model, extra options: one mpc.py per core
  [ -e "$out$1.json" ] || python benchmarks/mpc.py --data "$D" --policies $R/policy/seed{0,1,2}/checkpoints/last.ckpt \
    --world_models "$2" --episodes 4 --num_envs 4 "${@:3}" --out "$out$1.json" > "$R/logs/mpc$1.log" 2>&1
}
run "" logo=$R/wm/logo/checkpoints/best.ckpt --sweep_k 16 64 --sweep_h 1 5 & a=$!
run _ensemble ensemble=$R/wm/ensemble/checkpoints/best.ckpt --sweep_k --sweep_h --lambdas --no-variants & b=$!
wait $a; wait $b
echo "mpc_halfcheetah: done ($out.json, ${out}_ensemble.json)"
