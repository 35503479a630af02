"""Helpers shared by the benchmarks: timing, rates and a stand-in for the data set."""

import time
from typing import Any, Callable, Dict, List, Sequence

import jax
import jax.numpy as jnp
import numpy as np


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
