r"""Why ``layers.Conv`` computes its maps the way it does: each form timed on this machine.

  python -m benchmarks.conv_forms [--batch 50] [--rule_rows 1500] [--repeats 5] \
      [--out results/bench_conv_forms.json]

For the two convolutions of configs/mnist_conv_eqspike.py (5x5, 1-32 on 28x28 and 32-64 on
12x12, each with 2x2 average pooling) it times, in float32:

* ``forward``: convolution then pooling (the definition), against a box filter then the
  convolution at stride 2 (what ``Conv.forward`` does; 4x fewer products), and against one dot
  of the strided patches (``Conv._patch_forward``);
* ``transpose`` (the feedback): the VJP of each form;
* ``outer`` (the rule's product, over ``rule_rows`` = batch x nudged steps rows): the weight
  VJP of each form, both at the top level and inside a ``lax.scan`` of 2 steps (the trainer runs
  its steps in a scan, where a convolution's weight gradient is much slower on a CPU).

Times are medians of ``repeats`` calls after compiling; the GFLOP/s column counts the products
the pooled map needs (``Conv.products``), so forms doing more work read as slower. The load
average is recorded: on a shared machine only the ratios within one run are meaningful.
"""

import math
import os
import statistics
import sys
import time
from typing import Callable, Dict

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from benchmarks import common
from eqspike_jax import layers
from eqspike_jax import workdir
from eqspike_jax.network import Layer

_BATCH = flags.DEFINE_integer("batch", 50, "Rows of the forward and transpose maps.")
_RULE_ROWS = flags.DEFINE_integer("rule_rows", 1500, "Rows of the rule's product (batch x "
                                  "nudged steps: 50 x 30 in the shipped config).")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per form.")
_OUT = flags.DEFINE_string("out", None, "Write the results as JSON here.")

CONVS = (layers.Conv((28, 28, 1), 32, 5, 2), layers.Conv((12, 12, 32), 64, 5, 2))


def conv_then_pool(conv: layers.Conv, params: Layer, s):
  v = jax.lax.conv_general_dilated(s.reshape((-1,) + conv.in_shape), params.w, (1, 1), "VALID",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  n, h, w, c = v.shape
  p = conv.pool
  return v.reshape(n, h // p, p, w // p, p, c).mean((2, 4)).reshape(s.shape[:-1] + (-1,))


def forms(conv: layers.Conv) -> Dict[str, Callable]:
  return {"conv_then_pool": lambda p, s: conv_then_pool(conv, p, s),
          "box_then_strided_conv": conv.forward,
          "strided_patches_dot": conv._patch_forward}  # pylint: disable=protected-access


def median_time(fn, *args, repeats: int) -> float:
  fn = jax.jit(fn)
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _maps(forward, conv):
  """The three maps of one form: forward, its transpose and its weight gradient."""
  spec = lambda shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  transpose = lambda p, g: jax.linear_transpose(lambda v: forward(p, v),
                                                spec(g.shape[:-1] + (conv.n_in,)))(g)[0]
  outer = lambda pre, post: jax.linear_transpose(
      lambda w: forward(Layer(w=w, b=None), pre), spec(conv.w_shape))(post)[0]

  def outer_in_scan(pre, post):
    step = lambda acc, _: (acc + outer(pre, post), None)
    return jax.lax.scan(step, jnp.zeros(conv.w_shape), None, length=2)[0] / 2

  return transpose, outer, outer_in_scan


def bench_conv(conv: layers.Conv, batch: int, rule_rows: int, repeats: int) -> Dict:
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  params = conv.init(keys[0], "uniform", 1.0)
  s = (jax.random.uniform(keys[1], (batch, conv.n_in)) < 0.2).astype(jnp.float32)
  g = jax.random.uniform(keys[2], (batch, conv.n_out))
  pre = (jax.random.uniform(keys[3], (rule_rows, conv.n_in)) < 0.2).astype(jnp.float32)
  post = jax.random.uniform(keys[2], (rule_rows, conv.n_out))
  flops = {op: 2 * m * k * n for op, (m, k, n) in conv.products(batch).items()}
  flops["outer"] = 2 * math.prod(conv.products(rule_rows)["outer"])
  out = {}
  for name, forward in forms(conv).items():
    transpose, outer, outer_in_scan = _maps(forward, conv)
    row = {"forward_s": median_time(forward, params, s, repeats=repeats),
           "transpose_s": median_time(transpose, params, g, repeats=repeats),
           "outer_s": median_time(outer, pre, post, repeats=repeats),
           "outer_in_scan_s": median_time(outer_in_scan, pre, post, repeats=repeats) / 2}
    for op in ("forward", "transpose", "outer"):
      row[f"{op}_gflops"] = flops[op] / row[f"{op}_s"] / 1e9
    out[name] = row
    print(f"{conv.in_shape} -> {conv.out_shape} {name:22s} " + "  ".join(
        f"{k} {v * 1e3:8.2f} ms" for k, v in row.items() if k.endswith("_s")), flush=True)
  return {"in_shape": list(conv.in_shape), "channels": conv.channels, "kernel": conv.kernel,
          "pool": conv.pool, "forms": out}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  load = os.getloadavg()[0]
  results = [bench_conv(c, _BATCH.value, _RULE_ROWS.value, _REPEATS.value) for c in CONVS]
  report = {"command": " ".join(["python -m benchmarks.conv_forms"] + sys.argv[1:]),
            "git_sha": workdir.git_sha(), "jax_version": jax.__version__,
            "backend": jax.default_backend(), "cpu_count": os.cpu_count(),
            "load_average_1m_start": load, "load_average_1m_end": os.getloadavg()[0],
            "batch": _BATCH.value, "rule_rows": _RULE_ROWS.value, "convs": results}
  common.write_json(_OUT.value, report)


if __name__ == "__main__":
  app.run(main)
