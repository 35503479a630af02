#!/bin/bash
# One device call (benchmarks/gpu_session/prepare.py says how to start it): the conv configs
# trained in full on the GPU, a measured GPU energy figure, then a second Fashion seed, each cut
# to what is left of a 560 s budget; the logs and the run summaries come back in $OUT.
T0=$(date +%s); END=$((T0 + ${BUDGET:-560}))
left() { echo $((END - $(date +%s))); }
LOG=$OUT/all.log
# The data: the cache entries prepare.py exported under this key, the only source here.
export PYTHONUNBUFFERED=1 EQSPIKE_JAX_DATA_CACHE=$PWD/.gpu/cache EQSPIKE_JAX_DATA_KEY=gpucarry000000000000 TFDS_DATA_DIR=/nonexistent
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
{ echo "== env"; nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv
  python3 -c "import jax, flax, optax, orbax.checkpoint as o; print(jax.__version__, flax.__version__, optax.__version__, jax.devices())"; } >> $LOG 2>&1
filt() { grep -v -E "orbax|checkpoint_handler|checkpointer|async_checkpoint|Created Base|save_device|_write_metadata|composite_checkpoint|atomicity|standard_logger|multihost"; }
train() {  # name config cap [overrides...]
  local name=$1 cfg=$2 cap=$3; shift 3
  local t=$(left); t=$((t - 40)); [ $t -gt $cap ] && t=$cap
  [ $t -lt 60 ] && { echo "== $name skipped: $t s left" >> $LOG; return; }
  echo "== $name: $cfg $* (limit $t s) at $(( $(date +%s) - T0 )) s" >> $LOG
  timeout -s TERM -k 30 $t python3 -m launch.train --config $cfg --workdir /tmp/runs/$name "$@" 2>&1 | filt >> $LOG
  echo "== $name rc ${PIPESTATUS[0]} at $(( $(date +%s) - T0 )) s" >> $LOG
  timeout 60 python3 -m launch.summary --workdir /tmp/runs/$name --out $OUT/$name.json \
    --command "python -m launch.train --config $cfg --workdir runs/$name $* (on the H200)" 2>&1 | filt | tail -3 >> $LOG
}
train fashion_mnist_conv_eqspike_gpu_seed0 configs/fashion_mnist_conv_eqspike.py 320
train mnist_conv_eqspike_gpu_seed0 configs/mnist_conv_eqspike.py 170
t=$(( $(left) - 10 ))
if [ $t -gt 60 ]; then
  echo "== energy (limit $t s) at $(( $(date +%s) - T0 )) s" >> $LOG
  timeout -k 10 $t python3 -m benchmarks.gpu_energy --config configs/mnist_rate_ep.py --out $OUT/gpu_energy_mnist_rate_ep.json \
    --batches 1,50,1000 --seconds 5 --idle_seconds 3 2>&1 | tail -30 >> $LOG
fi
train fashion_mnist_conv_eqspike_gpu_seed1 configs/fashion_mnist_conv_eqspike.py 290 --config.seed=1
echo "== done at $(( $(date +%s) - T0 )) s" >> $LOG
