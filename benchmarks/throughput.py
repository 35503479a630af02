r"""Training throughput of a config, and how close it runs to the machine's matmul rate.

  python -m benchmarks.throughput --config configs/mnist_rate_ep.py \
      [--steps N] [--repeats R] [--out results/bench_NAME.json]

It builds the jitted train chunk exactly as the trainer does (``train.make_algorithm``,
``distributed.make_mesh``, ``train.make_train_chunk``, ``train.init_state``: see
``common.build_trainer``) on random images of the config's input size held
on the device, so it runs anywhere without the data set. One call runs ``--steps`` (default
``config.steps_per_call``) training steps; after compiling and one warm-up call it times
``--repeats`` calls and reports the median (and min, max) samples/s.

The FLOPs of one step come from ``eqspike_jax.flops`` (matrix products only), checked against
the products in the traced program and printed beside XLA's own ``cost_analysis``. In the same
run it times float32 matmuls of the step's own shapes and one large square matmul, so the
achieved FLOP rate reads as a fraction of what this machine does at the time of the run (the
machine may be shared: the load average is recorded too). A speed is only compared with what
the same run timed: no constant measured elsewhere enters the report.
"""

import math
import os
import sys
import time
from typing import Any, Callable, Dict, Optional, Sequence

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np

from benchmarks import common
from benchmarks.common import rate_stats, time_calls
from eqspike_jax import config_lib
from eqspike_jax import distributed
from eqspike_jax import flops as flops_lib
from eqspike_jax import layers
from eqspike_jax import metrics as metrics_lib
from eqspike_jax import train
from eqspike_jax import workdir

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=False)
_STEPS = flags.DEFINE_integer("steps", None, "Training steps per timed call; default: the "
                              "config's steps_per_call.")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed calls (after compile and one warm-up).")
_NUM_EXAMPLES = flags.DEFINE_integer("num_examples", 60000, "Random training images held on "
                                     "the device (MNIST's training set size by default).")
_SQUARE = flags.DEFINE_integer("square_size", 2048, "Side of the square reference matmul.")
_MIN_TIME = flags.DEFINE_float("matmul_min_time", 0.2, "Seconds each timed matmul call should "
                               "last; small products loop inside one jit call to reach it.")
_XLA_UNROLLED = flags.DEFINE_bool("xla_unrolled", True, "Also compile one step with its time "
                                  "loops unrolled for XLA's FLOP count (slow for long phases).")
_OUT = flags.DEFINE_string("out", None, "Write the results as JSON here.")
flags.mark_flag_as_required("config")


# ================================================================================================
# The training step.
# ================================================================================================


def cost_analysis_flops(compiled) -> Optional[float]:
  """XLA's own FLOP estimate of a compiled program, or None where the backend gives none."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return None  # Some backends do not implement it; the benchmark does not depend on it.
  if isinstance(cost, (list, tuple)):  # Older JAX: one dict per device program.
    cost = cost[0] if cost else None
  if not cost or "flops" not in cost:
    return None
  return float(cost["flops"])


def unrolled_step_xla_flops(config, x, y, key, total_steps: int) -> Optional[float]:
  """XLA's FLOPs of one ``algorithm.update`` on one batch, with its time loops fully unrolled.

  XLA's cost analysis counts a while-loop body once whatever its trip count, so on the train
  chunk (a scan of steps, each a scan of time steps) it reports roughly one time step per phase.
  Unrolling the time scans (``scan_unroll`` changes speed, never results) leaves straight-line
  code that XLA counts in full, elementwise work included.
  """
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.scan_unroll = max(config.t_free, config.t_nudge)
  algorithm, optimizer = train.make_algorithm(config, total_steps)
  state = train.init_state(config, algorithm, optimizer)
  update = jax.jit(algorithm.update)
  return cost_analysis_flops(update.lower(state.params, state.opt_state, x, y, key).compile())


def run_steps(config, num_examples: int) -> int:
  """Batches in a whole run over ``num_examples`` (what a learning-rate schedule spans)."""
  return num_examples // config.batch_size * config.num_epochs


def traced_step_flops(algorithm, state, x, y, key) -> int:
  """Matrix-product FLOPs of one ``algorithm.update`` read off its jaxpr, loops included."""
  jaxpr = jax.make_jaxpr(algorithm.update)(state.params, state.opt_state, x, y, key)
  return flops_lib.jaxpr_cost(jaxpr).dot_flops


def bench_training(config, steps: int, repeats: int, num_examples: int,
                   xla_unrolled: bool) -> Dict[str, Any]:
  """Compiles, warms up and times the trainer's jitted chunk of ``steps`` steps."""
  num_classes = config.layer_sizes[-1]
  batch = config.batch_size
  total_steps = run_steps(config, num_examples)
  trainer = common.build_trainer(config, total_steps)
  images, labels = common.random_dataset(jax.random.PRNGKey(config.seed + 12345), num_examples,
                                         config.layer_sizes[0], num_classes)
  x, y = images[:batch], jax.nn.one_hot(labels[:batch], num_classes)
  key = train.step_key(config.seed)
  traced = traced_step_flops(trainer.algorithm, trainer.state, x, y, key)
  state, images, labels = distributed.replicate((trainer.state, images, labels), trainer.mesh)
  # Indices as the trainer draws them: a slice of a permutation, as many rows as steps.
  idx = common.index_batches(config.seed, num_examples, steps, batch)

  unrolled_xla = (unrolled_step_xla_flops(config, x, y, key, total_steps) if xla_unrolled
                  else None)
  t0 = time.perf_counter()
  compiled = trainer.chunk.lower(state, images, labels, idx, key).compile()
  compile_s = time.perf_counter() - t0
  xla_flops = cost_analysis_flops(compiled)

  # The state is donated: every call consumes the previous state and returns the next one.
  holder = {"state": state, "metrics": None}

  def call():
    holder["state"], holder["metrics"] = compiled(holder["state"], images, labels, idx, key)
    return holder["state"], holder["metrics"]

  warmup_s = time_calls(call, 1)[0]
  times = time_calls(call, repeats)
  # A step's metrics may hold typed records (EqSpike's events): named leaves, as the trainer logs.
  metrics = metrics_lib.flatten(jax.device_get(holder["metrics"]))
  return {
      "samples_per_call": steps * batch,
      "times_s": times,
      "samples_per_s": rate_stats(steps * batch, times),
      "compile_s": compile_s,
      "warmup_call_s": warmup_s,
      "traced_flops_per_example": traced / batch,
      "xla_chunk_flops_per_call": xla_flops,
      "xla_unrolled_flops_per_example": (unrolled_xla / batch if unrolled_xla is not None
                                         else None),
      "final_loss": float(np.mean(metrics["loss"])),
      "metrics_finite": bool(all(np.all(np.isfinite(v)) for v in metrics.values())),
  }


# ================================================================================================
# The machine's matmul rate.
# ================================================================================================


def _matmul_loop(lhs_t: bool, rhs_t: bool) -> Callable:
  """``(a, b, iters) -> (a', c)``: ``iters`` dependent products ``c = a @ b`` in one jit call.

  One element of each product is fed back into ``a`` so that XLA cannot hoist the
  loop-invariant product out of the loop, and the chain is serial like the EP time steps. The
  product is carried out of the loop so it is computed in full.
  """
  def run(a, b, iters):
    def body(_, carry):
      a, _ = carry
      c = (a.T if lhs_t else a) @ (b.T if rhs_t else b)
      return a.at[0, 0].add(1e-30 * c[0, 0]), c

    m = a.shape[1] if lhs_t else a.shape[0]
    n = b.shape[0] if rhs_t else b.shape[1]
    return jax.lax.fori_loop(0, iters, body, (a, jnp.zeros((m, n), a.dtype)))

  return jax.jit(run)


def bench_matmul(m: int, k: int, n: int, repeats: int, min_time: float,
                 lhs_t: bool = False, rhs_t: bool = False) -> Dict[str, Any]:
  """Steady-state float32 GFLOP/s of ``[m, k] @ [k, n]`` (operands stored as the step does)."""
  k_a, k_b = jax.random.split(jax.random.PRNGKey(0))
  a = jax.random.uniform(k_a, (k, m) if lhs_t else (m, k), jnp.float32)
  b = jax.random.uniform(k_b, (n, k) if rhs_t else (k, n), jnp.float32)
  loop = _matmul_loop(lhs_t, rhs_t)
  jax.block_until_ready(loop(a, b, 1))  # Compile; the trip count is dynamic, so once only.
  # Calibrate the trip count so one call lasts about min_time; tiny products need many.
  one = min(time_calls(lambda: loop(a, b, 1), 3))
  iters = int(min(max(1, math.ceil(min_time / one)), 10**6))
  times = time_calls(lambda: loop(a, b, iters), repeats)
  stats = rate_stats(2.0 * m * k * n * iters / 1e9, times)
  return {"shape": f"[{m},{k}]@[{k},{n}]", "lhs_t": lhs_t, "rhs_t": rhs_t, "iters": iters,
          "gflops": stats}


def bench_conv(mm: flops_lib.Matmul, repeats: int, min_time: float) -> Dict[str, Any]:
  """Steady-state float32 GFLOP/s of a convolution's map ``mm.op`` on ``mm.rows`` examples.

  The map is run as the step runs it (``layers.Conv``), on random 0/1 spikes (forward, outer)
  and states (transpose, outer), in a loop like ``_matmul_loop``'s.
  """
  layer, op = mm.layer, mm.op
  params = layer.init(jax.random.PRNGKey(0), "uniform", 1.0)
  k_a, k_b = jax.random.split(jax.random.PRNGKey(1))
  n_a = layer.n_out if op == "transpose" else layer.n_in
  a = (jax.random.uniform(k_a, (mm.rows, n_a)) < 0.2).astype(jnp.float32)
  b = jax.random.uniform(k_b, (mm.rows, layer.n_out), jnp.float32)
  fns = {"forward": lambda a, b: layer.forward(params, a),
         "transpose": lambda a, b: layer.transpose(params, a),
         "outer": layer.outer}

  @jax.jit
  def loop(a, b, iters):
    def body(_, carry):
      a, c = carry
      c = fns[op](a, b)
      return a.at[0, 0].add(1e-30 * c.ravel()[0]), c
    shape = jax.eval_shape(fns[op], a, b)
    return jax.lax.fori_loop(0, iters, body, (a, jnp.zeros(shape.shape, a.dtype)))

  jax.block_until_ready(loop(a, b, 1))
  one = min(time_calls(lambda: loop(a, b, 1), 3))
  iters = int(min(max(1, math.ceil(min_time / one)), 10**6))
  times = time_calls(lambda: loop(a, b, iters), repeats)
  stats = rate_stats(2.0 * mm.m * mm.k * mm.n * iters / 1e9, times)
  return {"shape": f"conv {layer.in_shape}->{layer.out_shape} {op} x{mm.rows}", "iters": iters,
          "gflops": stats}


def bench_step_matmuls(matmuls: Sequence[flops_lib.Matmul], repeats: int,
                       min_time: float) -> Dict[str, Any]:
  """Each distinct product of the step (a convolution's as itself), and their mix's rate.

  The mix rate is the step's product FLOPs over the time they would take if each ran at its
  standalone speed: what the step would reach if it did nothing but its matmuls.
  """
  per_shape, seconds, total = {}, 0.0, 0
  for mm in matmuls:
    key = (mm.m, mm.k, mm.n, mm.lhs_t, mm.rhs_t, mm.layer, mm.op)
    if key not in per_shape:  # A convolution is timed as itself.
      per_shape[key] = (bench_conv(mm, repeats, min_time) if mm.layer is not None else
                        bench_matmul(*key[:3], repeats, min_time, mm.lhs_t, mm.rhs_t))
      per_shape[key]["names"] = []
    per_shape[key]["names"].append(mm.name)
    seconds += mm.flops / (per_shape[key]["gflops"]["median"] * 1e9)
    total += mm.flops
  return {"shapes": list(per_shape.values()), "mix_gflops": total / seconds / 1e9}


# ================================================================================================
# Report.
# ================================================================================================


def summarize(config, steps: int, training: Dict[str, Any], counts: Dict[str, int],
              square: Dict[str, Any], step_mm: Dict[str, Any]) -> Dict[str, Any]:
  sps = training["samples_per_s"]
  achieved = {k: v * counts["total"] / 1e9 for k, v in sps.items()}
  square_rate = square["gflops"]["median"]
  return {
      "config_name": config.get("name", ""),
      "command": " ".join(["python -m benchmarks.throughput"] + sys.argv[1:]),
      "git_sha": workdir.git_sha(),
      "jax_version": jax.__version__,
      "backend": jax.default_backend(),
      "devices": [str(d) for d in jax.devices()[:distributed.resolve_num_devices(config)]],
      "cpu_count": os.cpu_count(),
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "load_average_1m": os.getloadavg()[0],  # At the end of the run.
      "model": config.model,
      "layer_sizes": list(config.layer_sizes),
      "conv_layers": [list(layer) for layer in config.conv_layers],
      "unit_counts": list(layers.sizes_of(layers.from_config(config))),
      "nudging": config.nudging,
      "update_mode": config.update_mode,
      "t_free": config.t_free,
      "t_nudge": config.t_nudge,
      "batch_size": config.batch_size,
      "steps_per_call": steps,
      "repeats": len(training["times_s"]),
      "compile_s": training["compile_s"],
      "warmup_call_s": training["warmup_call_s"],
      "call_times_s": training["times_s"],
      "samples_per_s": sps,
      "flops_per_example": counts,
      "traced_flops_per_example": training["traced_flops_per_example"],
      # XLA's count, elementwise ops included: of one step with unrolled time loops
      # (comparable), and of the whole chunk as compiled (loop bodies counted once each).
      "xla_flops_per_example": training["xla_unrolled_flops_per_example"],
      "xla_chunk_flops_per_call_loops_once": training["xla_chunk_flops_per_call"],
      "achieved_gflops": achieved,
      "matmul_square": square,
      "matmul_step_shapes": step_mm,
      "fraction_of_square_matmul": achieved["median"] / square_rate,
      "fraction_of_step_shaped_matmul": achieved["median"] / step_mm["mix_gflops"],
      "final_loss": training["final_loss"],
      "metrics_finite": training["metrics_finite"],
  }


def format_table(r: Dict[str, Any]) -> str:
  sps, c = r["samples_per_s"], r["flops_per_example"]
  xla, chunk = r["xla_flops_per_example"], r["xla_chunk_flops_per_call_loops_once"]
  lines = [
      f"{r['config_name']}: {r['unit_counts']} {r['nudging']} {r['update_mode']}, "
      f"T {r['t_free']}+{r['t_nudge']}, batch {r['batch_size']}, "
      f"{r['steps_per_call']} steps/call, {r['repeats']} calls; {r['devices']}, "
      f"{r['cpu_count']} CPUs, load at end {r['load_average_1m']:.2f}",
      f"  samples/s         median {sps['median']:10.1f}   min {sps['min']:10.1f}   "
      f"max {sps['max']:10.1f}",
      f"  MFLOP/example     analytic {c['total'] / 1e6:.4f} (drive {c['input_drive'] / 1e6:.4f}, "
      f"dynamics {c['dynamics'] / 1e6:.4f}, update {c['update'] / 1e6:.4f}); "
      f"traced {r['traced_flops_per_example'] / 1e6:.4f}; "
      f"XLA (unrolled, with elementwise) {'n/a' if xla is None else f'{xla / 1e6:.4f}'}",
      f"  XLA cost_analysis of the train chunk: "
      f"{'n/a' if chunk is None else f'{chunk / 1e6:.1f} MFLOP/call'} (counts each loop "
      f"body once, not comparable)",
      f"  activations/example {c['activation_evals']} over {c['time_steps']} time steps",
      f"  achieved GFLOP/s  median {r['achieved_gflops']['median']:.2f}",
      f"  matmul GFLOP/s    square {r['matmul_square']['shape']} "
      f"{r['matmul_square']['gflops']['median']:.2f}; step-shaped mix "
      f"{r['matmul_step_shapes']['mix_gflops']:.2f}",
  ]
  for s in r["matmul_step_shapes"]["shapes"]:
    lines.append(f"      {s['shape']:<22} {s['gflops']['median']:8.2f}  ({', '.join(s['names'])})")
  lines.append(f"  fraction of matmul rate: square {r['fraction_of_square_matmul']:.3f}, "
               f"step-shaped {r['fraction_of_step_shaped_matmul']:.3f}")
  if not r["metrics_finite"]:
    lines.append("  WARNING: non-finite training metrics on the random data.")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  steps = _STEPS.value or config.steps_per_call
  with config.unlocked():
    config.steps_per_call = steps
  config_lib.validate(config)
  repeats = _REPEATS.value
  if repeats < 1:
    raise app.UsageError("--repeats must be >= 1.")
  if _NUM_EXAMPLES.value < config.batch_size:
    raise app.UsageError(f"--num_examples must be >= batch_size ({config.batch_size}).")

  counts = flops_lib.ep_step_flops(config)  # Fails early on a model with no count yet.
  load_start = os.getloadavg()[0]  # The machine may be shared: the rates are only as good as this.
  training = bench_training(config, steps, repeats, _NUM_EXAMPLES.value, _XLA_UNROLLED.value)
  square = bench_matmul(_SQUARE.value, _SQUARE.value, _SQUARE.value, repeats, _MIN_TIME.value)
  step_mm = bench_step_matmuls(flops_lib.step_matmuls(config), repeats, _MIN_TIME.value)
  result = summarize(config, steps, training, counts, square, step_mm)
  result["load_average_1m_start"] = load_start
  print(format_table(result))
  common.write_json(_OUT.value, result)


if __name__ == "__main__":
  app.run(main)
