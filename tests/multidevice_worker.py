"""Run by multidevice_test.py in a fresh process with N fake CPU devices (XLA_FLAGS).

Prints one JSON line: for each case, the largest difference between the parameters reached on
one device and on N devices.
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from eqspike_jax import config_lib
from eqspike_jax import distributed
from eqspike_jax import train
from eqspike_jax import workdir as workdir_lib


# (model, variant): the default update of each model, and the other paths that reduce over the
# devices differently (online updates reduce at every nudged step) or draw randomness (a random
# beta sign must be the same on every device: one estimator whatever the device count).
CASES = (("rate_ep", ""), ("rate_ep", "symmetric"), ("rate_ep", "online"),
         ("rate_ep", "random_sign"), ("eqspike", ""), ("eqspike", "online"),
         ("eqspike", "random_sign"))


def tiny_config(model: str, num_devices: int, variant: str = ""):
  c = config_lib.base_config(model)
  c.num_devices = num_devices
  # SGD: Adam's first steps turn float-rounding differences of near-zero gradient entries into
  # steps of a whole learning rate, which would hide what is compared here.
  c.layer_sizes, c.optimizer, c.learning_rates = (784, 24, 10), "sgd", (0.1, 0.05)
  c.batch_size, c.eval_batch_size = 8, 100
  if model == "eqspike":
    c.t_free, c.t_nudge, c.beta, c.nudging = 12, 4, 0.5, "symmetric"
  else:
    c.t_free, c.t_nudge, c.beta = 8, 4, 0.5
  if variant == "symmetric":
    c.nudging = "symmetric"
  elif variant == "online":
    c.update_mode = "online"
  elif variant == "random_sign":
    c.nudging = "random_sign"
  return c


def params_after_steps(model: str, num_devices: int, steps: int = 3, variant: str = "") -> list:
  """Parameters after ``steps`` training steps of the same global batches."""
  c = tiny_config(model, num_devices, variant)
  algorithm, optimizer = train.make_algorithm(c)
  state = train.init_state(c, algorithm, optimizer)
  if not steps:  # The initial parameters, without compiling a chunk of zero steps.
    return [np.asarray(a) for a in jax.tree.leaves(state.params)]
  rng = np.random.default_rng(0)
  images = rng.random((64, 784)).astype(np.float32)
  labels = rng.integers(0, 10, 64).astype(np.int32)
  idx = np.arange(steps * c.batch_size, dtype=np.int32).reshape(steps, c.batch_size)
  mesh = distributed.make_mesh(num_devices)
  chunk = train.make_train_chunk(algorithm, 10, mesh)
  state, images, labels = distributed.replicate((state, images, labels), mesh)
  state, _ = chunk(state, images, labels, jnp.asarray(idx), train.step_key(c.seed))
  return [np.asarray(a) for a in jax.tree.leaves(state.params)]


def max_diff(a, b) -> float:
  return float(max(np.max(np.abs(x - y)) for x, y in zip(a, b)))


def quick_run(workdir: str, num_devices: int):
  c = tiny_config("rate_ep", num_devices)
  c.batch_size, c.train_subset, c.eval_subset = 50, 600, 200
  c.num_epochs, c.steps_per_call, c.download = 2, 4, False
  summary = train.train_and_evaluate(c, workdir)
  _, params, _ = workdir_lib.load_trained(workdir)
  return summary, [np.asarray(a) for a in jax.tree.leaves(params)]


def main(tmp: str):
  out = {"num_devices": jax.local_device_count(), "steps": {}}
  for model, variant in CASES:
    name = f"{model}{'/' + variant if variant else ''}"
    one = params_after_steps(model, 1, variant=variant)
    # Four devices split each batch of 8 in 2s; the quick run below trains on two.
    out["steps"][f"{name}/4"] = max_diff(one, params_after_steps(model, 4, variant=variant))
    out["steps"][f"{name}/moved"] = max_diff(
        one, params_after_steps(model, 1, steps=0, variant=variant))
  s1, p1 = quick_run(f"{tmp}/one", 1)
  s2, p2 = quick_run(f"{tmp}/two", 2)
  out["quick"] = {"accuracy_1": s1["test_accuracy_per_epoch"],
                  "accuracy_2": s2["test_accuracy_per_epoch"], "params_diff": max_diff(p1, p2),
                  "devices_2": s2["devices"]}
  print(json.dumps(out))


if __name__ == "__main__":
  main(sys.argv[1])
