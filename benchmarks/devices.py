r"""Training throughput on 1 device against N devices, paired: one process, calls alternated.

  python -m benchmarks.devices --config configs/mnist_rate_ep.py [--num_devices 2] \
      [--rounds 20] [--out results/bench_devices_mnist_rate_ep.json]

On a CPU the N devices are fake (``--xla_force_host_platform_device_count``, set here before JAX
starts). Both set-ups are built exactly as the trainer builds them (``distributed.make_mesh``,
``train.make_train_chunk``, ``train.init_state``: ``common.build_trainer``) on the same random
images and index batches, compiled, warmed up, and then timed call by call in alternation, so a
change in the machine's load (this one is shared and virtual; separate runs differ by 10-20 %)
hits both alike. Reports the median samples/s of each and their ratio.
"""

import json
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=False)
_NUM_DEVICES = flags.DEFINE_integer("num_devices", 2, "Devices of the data-parallel set-up.")
_ROUNDS = flags.DEFINE_integer("rounds", 20, "Timed calls of each set-up, alternated.")
_STEPS = flags.DEFINE_integer("steps", None, "Training steps per call; default: the config's "
                              "steps_per_call.")
_OUT = flags.DEFINE_string("out", None, "Write the results as JSON here.")
flags.mark_flags_as_required(["config"])


def _force_devices(n: int) -> None:
  """Asks XLA for ``n`` host devices; only works before JAX initialises its backends."""
  flag = f"--xla_force_host_platform_device_count={n}"
  current = os.environ.get("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" not in current:
    os.environ["XLA_FLAGS"] = f"{current} {flag}".strip()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  _force_devices(_NUM_DEVICES.value)
  # pylint: disable=g-import-not-at-top
  import jax
  import numpy as np
  from benchmarks import common
  from eqspike_jax import distributed
  from eqspike_jax import train
  from eqspike_jax import workdir
  # pylint: enable=g-import-not-at-top

  config = _CONFIG.value
  steps = _STEPS.value or config.steps_per_call
  num_classes, batch = config.layer_sizes[-1], config.batch_size
  images0, labels0 = common.random_dataset(jax.random.PRNGKey(config.seed + 12345), 10_000,
                                           config.layer_sizes[0], num_classes)
  idx = common.index_batches(config.seed, 10_000, steps, batch)
  key = train.step_key(config.seed)

  setups = {}
  for n in (1, _NUM_DEVICES.value):
    config.num_devices = n
    trainer = common.build_trainer(config, total_steps=10_000)
    state, images, labels = distributed.replicate(
        (trainer.state, np.asarray(images0), np.asarray(labels0)), trainer.mesh)
    holder = {"state": state}

    def call(chunk=trainer.chunk, holder=holder, images=images, labels=labels):
      holder["state"], metrics = chunk(holder["state"], images, labels, idx, key)
      return metrics

    jax.block_until_ready(call())  # Compile.
    jax.block_until_ready(call())  # Warm up.
    setups[n] = call
  times = {n: [] for n in setups}
  for _ in range(_ROUNDS.value):
    for n, call in setups.items():
      times[n] += common.time_calls(call, 1)
  rates = {n: common.rate_stats(steps * batch, t) for n, t in times.items()}
  n = _NUM_DEVICES.value
  result = {
      "config_name": config.name, "command": " ".join(["python -m benchmarks.devices"]
                                                      + sys.argv[1:]),
      "git_sha": workdir.git_sha(), "jax_version": jax.__version__,
      "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()[:n]],
      "cpu_count": os.cpu_count(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "batch_size": batch, "steps_per_call": steps, "rounds": _ROUNDS.value,
      "samples_per_s": {str(k): v for k, v in rates.items()},
      "ratio_median": rates[n]["median"] / rates[1]["median"],
      "call_times_s": {str(k): v for k, v in times.items()},
  }
  print(f"{config.name}: 1 device {rates[1]['median']:,.0f} samples/s, {n} devices "
        f"{rates[n]['median']:,.0f} samples/s (medians of {_ROUNDS.value} alternated calls of "
        f"{steps} steps): ratio {result['ratio_median']:.3f}")
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      json.dump(result, f, indent=2)


if __name__ == "__main__":
  app.run(main)
