r"""Peak training memory per example against the number of time steps: EqSpike against BPTT.

  python -m benchmarks.memory [--steps 20,50,100,200,400] [--out results/memory_vs_steps.json] \
      [--figure results/memory_vs_steps.png]
  python -m benchmarks.memory --from_json results/memory_vs_steps.json \
      --figure results/memory_vs_steps.png   # Redraw only.

For each number of free-phase steps T it compiles one training step of the shipped configs
(configs/mnist_eqspike.py with accumulated and with online updates, and with its free phase
streamed, eqspike.stream_free_phase; configs/mnist_bptt.py), batch
50, exactly as the trainer jits it, and reads XLA's memory analysis of the compiled program:
the temporary buffers (what the step needs beyond its inputs and outputs) divided by the batch.
Nothing is assumed: what an implementation stores is what the compiler allocates. EqSpike's
nudged phase is kept at its shipped length (t_nudge 20) while the free phase grows.
"""

import json
import os
import sys

from absl import app
from absl import flags
import jax

from benchmarks import common
from eqspike_jax import config_lib
from eqspike_jax import workdir

_STEPS = flags.DEFINE_list("steps", ["20", "50", "100", "200", "400"], "Free-phase lengths T.")
_OUT = flags.DEFINE_string("out", None, "Where to write the JSON.")
_FIGURE = flags.DEFINE_string("figure", None, "Also draw the curves here (PNG).")
_FROM_JSON = flags.DEFINE_string("from_json", None, "Draw --figure from this JSON; measure nothing.")
_BATCH = 50
VARIANTS = {  # name: (config file, overrides)
    "eqspike_accumulated": ("configs/mnist_eqspike.py", {}),
    "eqspike_online": ("configs/mnist_eqspike.py", {"update_mode": "online",
                                                     "optimizer": "sgd"}),
    "eqspike_streamed": ("configs/mnist_eqspike.py", {"eqspike.stream_free_phase": True}),
    "bptt": ("configs/mnist_bptt.py", {}),
}


def measure(steps) -> dict:
  out = {}
  for name, (path, overrides) in VARIANTS.items():
    rows = []
    for t in steps:
      config = config_lib.from_file(path)
      for field, value in overrides.items():
        section, _, key = field.rpartition(".")
        (config[section] if section else config)[key] = value
      config.t_free, config.batch_size, config.steps_per_call = t, _BATCH, 1
      if name.startswith("eqspike_online"):
        config.learning_rates = (1e-3, 1e-3)
      config_lib.validate(config)
      rows.append({"t_free": t, **common.temp_bytes_per_example(config)})
      print(f"{name:22s} T {t:4d}: {rows[-1]['temp_bytes_per_example'] / 1e6:8.2f} MB per "
            f"example", flush=True)
    out[name] = rows
  return out


def main(argv):
  del argv
  if _FROM_JSON.value:
    with open(_FROM_JSON.value) as f:
      draw(json.load(f))
    return
  steps = [int(s) for s in _STEPS.value]
  result = {"benchmark": "memory_vs_steps", "command": " ".join(["python -m benchmarks.memory"]
                                                                + sys.argv[1:]),
            "git_sha": workdir.git_sha(), "jax_version": jax.__version__,
            "device": str(jax.devices()[0]), "batch_size": _BATCH, "t_nudge_eqspike": 20,
            "what": "XLA temp_size_in_bytes of one compiled training step / batch size",
            "variants": measure(steps)}
  if _OUT.value:
    os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
    with open(_OUT.value, "w") as f:
      json.dump(result, f, indent=1)
    print(f"wrote {_OUT.value}")
  draw(result)


def draw(result: dict) -> None:
  if _FIGURE.value:
    from eqspike_jax import plots  # pylint: disable=g-import-not-at-top
    print(f"wrote {plots.save(plots.memory_vs_steps(result), _FIGURE.value)}")


if __name__ == "__main__":
  app.run(main)
