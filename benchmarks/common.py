"""Helpers shared by the benchmarks: timing, rates, a stand-in for the data set, and the
trainer's jitted chunk built exactly as ``train.train_and_evaluate`` builds it."""

import json
import os
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from eqspike_jax import distributed
from eqspike_jax import ep_core
from eqspike_jax import train


def write_json(path: Optional[str], report: Dict[str, Any]) -> None:
  """Writes a benchmark's report to ``path`` (``--out``), when one is given."""
  if not path:
    return
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(report, f, indent=2)
  print(f"wrote {path}")


def time_calls(fn: Callable[[], Any], repeats: int) -> List[float]:
  """Wall seconds of ``repeats`` calls of ``fn``, each waited for with ``block_until_ready``."""
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return times


def rate_stats(work: float, times: Sequence[float]) -> Dict[str, float]:
  """``work`` per call over the timed calls: median, min and max rates."""
  rates = [work / t for t in times]
  return {"median": float(np.median(rates)), "min": float(min(rates)), "max": float(max(rates))}


def random_dataset(key, num_examples: int, num_inputs: int, num_classes: int):
  """Images in [0, 1) and labels, on the device, like MNIST after ``data.load_split``."""
  k_x, k_y = jax.random.split(key)
  images = jax.random.uniform(k_x, (num_examples, num_inputs), jnp.float32)
  labels = jax.random.randint(k_y, (num_examples,), 0, num_classes, jnp.int32)
  return images, labels


def index_batches(seed: int, num_examples: int, steps: int, batch: int) -> jax.Array:
  """``[steps, batch]`` indices as the trainer draws them: a slice of a permutation."""
  order = np.random.default_rng(seed).permutation(num_examples)
  return jnp.asarray(np.resize(order, steps * batch).reshape(steps, batch).astype(np.int32))


class Trainer(NamedTuple):
  """What the trainer builds before its loop, for ``config.num_devices`` devices."""
  algorithm: ep_core.Algorithm
  optimizer: optax.GradientTransformation
  mesh: Optional[jax.sharding.Mesh]
  chunk: Callable          # train.make_train_chunk: (state, images, labels, idx, key).
  state: train.TrainState  # The step-0 state, on the host (not yet replicated).


def build_trainer(config: ml_collections.ConfigDict, total_steps: int) -> Trainer:
  """The algorithm, mesh, jitted chunk and initial state of ``config``, as the trainer has them.

  ``total_steps`` (batches of a whole run) sets the learning-rate schedule, as in training.
  """
  algorithm, optimizer = train.make_algorithm(config, total_steps)
  mesh = distributed.make_mesh(distributed.resolve_num_devices(config))
  chunk = train.make_train_chunk(algorithm, config.layer_sizes[-1], mesh)
  return Trainer(algorithm, optimizer, mesh, chunk,
                 train.init_state(config, algorithm, optimizer))


def temp_bytes_per_example(config) -> Dict[str, float]:
  """XLA's memory analysis of one jitted training step of ``config`` (benchmarks/memory.py)."""
  trainer = build_trainer(config, total_steps=1000)
  images, labels = random_dataset(jax.random.PRNGKey(0), 1000, config.layer_sizes[0], 10)
  idx = index_batches(0, 1000, 1, config.batch_size)
  lowered = trainer.chunk.lower(trainer.state, images, labels, idx, jax.random.PRNGKey(1))
  analysis = lowered.compile().memory_analysis()
  return {"temp_bytes_per_example": analysis.temp_size_in_bytes / config.batch_size,
          "argument_bytes": analysis.argument_size_in_bytes,
          "output_bytes": analysis.output_size_in_bytes}
