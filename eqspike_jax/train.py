"""Training and evaluation loop shared by every model: ``train_and_evaluate(config, workdir)``.

One jit call runs ``config.steps_per_call`` training steps in a ``lax.scan`` over index batches
into the device-resident training set, so Python and host-device copies cost nothing per step.
The order of every epoch is a pure function of ``(seed, epoch)`` and each step's random key is
``fold_in(key, step)``: a run restored from a checkpoint at any step continues exactly as the
uninterrupted run would have.
"""

import contextlib
import json
import os
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from absl import logging
import chex
import flax
from flax.metrics import tensorboard
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp

from eqspike_jax import config_lib
from eqspike_jax import data as data_lib
from eqspike_jax import optim
from eqspike_jax import rate_ep

# ================================================================================================
# State and algorithm.
# ================================================================================================


@flax.struct.dataclass
class TrainState:
  step: chex.Array       # Global training step: batches seen so far (int32 scalar).
  params: Any            # The network (a tuple of network.Layer).
  opt_state: Any         # The optax state.


def make_algorithm(config: ml_collections.ConfigDict, total_steps: int = 0
                   ) -> Tuple[rate_ep.Algorithm, optax.GradientTransformation]:
  """The algorithm and its optimizer; ``total_steps`` (batches in the run) sets the schedule."""
  # Online updates take one optimizer step per nudged step.
  steps_per_batch = config.t_nudge if config.update_mode == "online" else 1
  optimizer = optim.make_optimizer(config.optimizer, config.learning_rates, config.momentum,
                                   config.lr_schedule, total_steps * steps_per_batch,
                                   config.lr_final_fraction)
  if config.model == "rate_ep":
    return rate_ep.make_algorithm(config, optimizer), optimizer
  if config.model == "eqspike":
    from eqspike_jax import eqspike  # pylint: disable=g-import-not-at-top
    return eqspike.make_algorithm(config, optimizer), optimizer
  raise ValueError(f"config.model = {config.model!r}: must be one of {config_lib.MODELS}.")


def init_state(config, algorithm, optimizer) -> TrainState:
  params = algorithm.init_params(jax.random.fold_in(jax.random.PRNGKey(config.seed), 0))
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=optimizer.init(params))


def step_key(seed: int) -> chex.PRNGKey:
  """Root of the per-step keys; stream 1 (stream 0 initialises the parameters)."""
  return jax.random.fold_in(jax.random.PRNGKey(seed), 1)


# ================================================================================================
# Jitted work: a chunk of training steps, and the evaluation of a whole split.
# ================================================================================================


AXIS = "devices"  # The mesh axis the batch is split over.


def initialize_distributed(coordinator_address: Optional[str] = None,
                           num_processes: Optional[int] = None,
                           process_id: Optional[int] = None) -> None:
  """Joins a multi-process (multi-host) run; call it before anything touches a device.

  Every process runs the same command on the same workdir (a filesystem they all see, as orbax
  needs), loads the whole (small) dataset and feeds its own devices their slice of every global
  batch. Without arguments JAX finds the cluster itself (SLURM, Cloud TPU, ...); otherwise give
  the first process's ``host:port`` and each process's index. On CPUs the collectives go
  through gloo.
  """
  # Only the CPU backend reads this; accelerators bring their own collectives.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)
  logging.info("Process %d of %d; devices: %s", jax.process_index(), jax.process_count(),
               jax.devices())


def make_mesh(num_devices: int) -> Optional[jax.sharding.Mesh]:
  """A 1-D mesh of the first ``num_devices`` devices of every process; None for one device.

  With several processes (``jax.distributed.initialize``) the mesh spans all their devices, so
  every global batch is split over every host's devices.
  """
  if num_devices == 1:
    return None
  # Auto axes let jit split each chunk's index array across the devices as it goes in.
  return jax.make_mesh((num_devices,), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:num_devices])


def replicate(tree, mesh: Optional[jax.sharding.Mesh]):
  """Places ``tree`` on every device of ``mesh`` once, so no call copies it again.

  Every process holds the same values (the same data, the same seed), so each fills its own
  devices from its copy; this also works when the mesh spans several hosts.
  """
  if mesh is None:
    return jax.tree.map(jnp.asarray, tree)
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

  def put(leaf):
    value = np.asarray(leaf)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])

  return jax.tree.map(put, tree)


def make_train_chunk(algorithm, num_classes: int,
                     mesh: Optional[jax.sharding.Mesh] = None) -> Callable:
  """``(state, images, labels, idx [K, B], key) -> (state, metrics [K])``, one scan over K steps.

  With a ``mesh`` the chunk is a ``shard_map``: state, images and labels are replicated, each
  device takes its slice of every global batch (``idx`` split along B), and ``algorithm.update``
  averages the updates over the devices with ``lax.pmean``, so every replica stays equal.
  """
  axis_name = None if mesh is None else AXIS

  def train_chunk(state, images, labels, idx, key):
    chex.assert_rank(idx, 2)
    if axis_name is not None:
      # Each device its own stream (stochastic spikes, random beta sign), derived from the seed.
      key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))

    def body(state, idx_t):
      x = images[idx_t]
      y = jax.nn.one_hot(labels[idx_t], num_classes, dtype=x.dtype)
      params, opt_state, metrics = algorithm.update(
          state.params, state.opt_state, x, y, jax.random.fold_in(key, state.step),
          axis_name=axis_name)
      return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return jax.lax.scan(body, state, idx)

  if mesh is not None:
    spec = jax.sharding.PartitionSpec
    # check_vma=False: every phase scans from a constant rest state into device-varying
    # states, which the varying-axes type check would make each phase mark by hand. Replicas
    # stay equal because every update is pmean-ed (tested against one device).
    train_chunk = jax.shard_map(train_chunk, mesh=mesh,
                                in_specs=(spec(), spec(), spec(), spec(None, AXIS), spec()),
                                out_specs=(spec(), spec()), check_vma=False)
  return jax.jit(train_chunk, donate_argnums=0)


def resolve_num_devices(config) -> int:
  """``config.num_devices``, 0 meaning every device (of every process); checks the batch divides."""
  available = jax.device_count()
  n = config.num_devices or available
  if n > available:
    raise ValueError(f"config.num_devices = {config.num_devices}: only {available} devices are "
                     f"visible ({jax.devices()}).")
  if jax.process_count() > 1 and n != available:
    raise ValueError(f"config.num_devices = {config.num_devices}: a run over "
                     f"{jax.process_count()} processes uses all {available} of their devices; "
                     f"set num_devices to 0.")
  if config.batch_size % n:
    raise ValueError(f"config.batch_size = {config.batch_size} does not divide over {n} devices "
                     f"(config.num_devices = {config.num_devices}, 0 meaning all): choose a "
                     f"batch size that is a multiple of {n}, or set num_devices.")
  return n


def make_evaluate(algorithm, num_classes: int) -> Callable:
  """``(params, images [N_b, B, D], labels [N_b, B], mask [N_b, B], key) -> sums``."""

  def evaluate(params, images, labels, mask, key):
    def body(totals, batch):
      x, label, m, i = batch
      out = algorithm.predict(params, x, jax.random.fold_in(key, i))
      y = jax.nn.one_hot(label, num_classes, dtype=out.dtype)
      correct = jnp.sum(m * (jnp.argmax(out, -1) == label))
      loss = jnp.sum(m * 0.5 * jnp.sum(jnp.square(out - y), -1))
      return (totals[0] + correct, totals[1] + loss), None

    steps = jnp.arange(images.shape[0])
    (correct, loss), _ = jax.lax.scan(body, (0.0, 0.0), (images, labels, mask, steps))
    return {"correct": correct, "loss_sum": loss}

  return jax.jit(evaluate)


def eval_batches(split: data_lib.Split, batch_size: int):
  """Pads a split to whole batches; the mask zeroes the padding out of every sum."""
  n = len(split.labels)
  num_batches = -(-n // batch_size)
  pad = num_batches * batch_size - n
  images = np.concatenate([split.images, np.zeros((pad,) + split.images.shape[1:], np.float32)])
  labels = np.concatenate([split.labels, np.zeros((pad,), np.int32)])
  mask = np.concatenate([np.ones((n,), np.float32), np.zeros((pad,), np.float32)])
  shape = (num_batches, batch_size)
  return (images.reshape(shape + images.shape[1:]), labels.reshape(shape), mask.reshape(shape))


def evaluate_split(evaluate, params, batches, key) -> Dict[str, float]:
  images, labels, mask = batches
  sums = jax.device_get(evaluate(params, images, labels, mask, key))
  n = float(mask.sum())
  return {"accuracy": float(sums["correct"]) / n, "loss": float(sums["loss_sum"]) / n}


# ================================================================================================
# Health checks, provenance, checkpoints.
# ================================================================================================


def check_finite(metrics: Dict[str, np.ndarray], first_step: int) -> None:
  """Raises on the first non-finite per-step metric, naming the step and the metric."""
  for k in range(len(next(iter(metrics.values())))):
    for name in sorted(metrics):
      value = metrics[name][k]
      if not np.all(np.isfinite(value)):
        raise FloatingPointError(
            f"Training diverged: {name} = {value} at step {first_step + k}. Lower the learning "
            f"rates or beta, or check the initialisation; the last checkpoint precedes this step.")


def git_sha() -> str:
  here = os.path.dirname(os.path.abspath(__file__))
  try:
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                         check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, check=True).stdout.strip()
    return sha + ("-dirty" if dirty else "")
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


# Fields a resumed run may change: they do not alter the steps already taken.
_RESUMABLE_FIELDS = ("num_epochs", "checkpoint_every_steps", "steps_per_call", "data_dir",
                     "download", "eval_batch_size", "num_devices")


def check_same_run(config, workdir: str) -> None:
  """Refuses to resume a workdir that was started with a different config."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return
  with open(path) as f:
    old = json.load(f)
  new = json.loads(config.to_json_best_effort())
  resumable = set(_RESUMABLE_FIELDS)
  if new.get("lr_schedule", "constant") != "constant":
    resumable.discard("num_epochs")  # The schedule spans the whole run.
  changed = sorted(k for k in set(old) | set(new)
                   if k not in resumable and old.get(k) != new.get(k))
  if changed:
    raise ValueError(
        f"{workdir} holds a run with a different config (fields {changed} differ: "
        f"{ {k: (old.get(k), new.get(k)) for k in changed} }). Use a fresh --workdir, or the "
        f"same config to resume that run.")


def _checkpoint_manager(workdir: str) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True,
                                         enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                               options=options)


@contextlib.contextmanager
def _quiet():
  """Orbax logs a dozen INFO lines per save; keep the training log readable."""
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.WARNING)
  try:
    yield
  finally:
    logging.set_verbosity(verbosity)


def save_checkpoint(manager, state: TrainState, history: List[dict]) -> None:
  with _quiet():
    _save_checkpoint(manager, state, history)


def _save_checkpoint(manager, state, history):
  manager.save(int(state.step), args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), history=ocp.args.JsonSave(history)))
  manager.wait_until_finished()


def restore_checkpoint(manager, state: TrainState) -> Tuple[TrainState, List[dict]]:
  step = manager.latest_step()
  if step is None:
    return state, []
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  with _quiet():
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), history=ocp.args.JsonRestore()))
  logging.info("Resumed from the checkpoint at step %d.", step)
  return restored["state"], list(restored["history"] or [])


def load_config_json(workdir: str) -> ml_collections.ConfigDict:
  """The config a run in ``workdir`` was trained with (its ``config.json``)."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist: {workdir!r} is not the workdir of a run. "
                            f"Train one with python -m launch.train --config configs/NAME.py "
                            f"--workdir {workdir}.")
  with open(path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  # JSON turns tuples into lists; the network code indexes them either way, but keep the types.
  config.layer_sizes = tuple(config.layer_sizes)
  config.learning_rates = tuple(config.learning_rates)
  return config


def load_run_info(workdir: str) -> Dict[str, Any]:
  """The provenance a run in ``workdir`` recorded (``run_info.json``); unknown when absent."""
  path = os.path.join(workdir, "run_info.json")
  if not os.path.exists(path):
    return {"git_sha": "unknown", "command": ""}
  with open(path) as f:
    return json.load(f)


def load_trained(workdir: str) -> Tuple[ml_collections.ConfigDict, Any, int]:
  """``(config, params, step)`` of the last checkpoint of the run in ``workdir``."""
  config = load_config_json(workdir)
  # The optimizer state's structure does not depend on the schedule's length.
  algorithm, optimizer = make_algorithm(config, total_steps=1)
  with _quiet():
    manager = _checkpoint_manager(workdir)
  if manager.latest_step() is None:
    raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints: train the run (or let it "
                            f"reach its first epoch) before loading it.")
  state, _ = restore_checkpoint(manager, init_state(config, algorithm, optimizer))
  return config, state.params, int(state.step)


# ================================================================================================
# The loop.
# ================================================================================================


def _mean_metrics(chunks: List[Dict[str, np.ndarray]]) -> Dict[str, float]:
  return {k: float(np.mean(np.concatenate([c[k] for c in chunks]))) for k in chunks[0]}


def make_summary(config: Dict[str, Any], history: List[dict], sha: str,
                 command: str) -> Dict[str, Any]:
  """The run summary committed to results/: provenance, the per-epoch curve, throughput."""
  speeds = [r["samples_per_s"] for r in history if r.get("samples_per_s")]
  events = {k: v for k, v in history[-1].items() if k.startswith("train_events/")} if history else {}
  return {
      "config_name": config.get("name", ""),
      "command": command,
      "git_sha": sha,
      "seed": config.get("seed"),
      "config": config,
      "devices": [str(d) for d in jax.devices()[:config.get("num_devices") or None]],
      "test_accuracy_per_epoch": [r["test_accuracy"] for r in history],
      "final_test_accuracy": history[-1]["test_accuracy"] if history else None,
      "best_test_accuracy": max((r["test_accuracy"] for r in history), default=None),
      "events_per_example_last_epoch": {k[len("train_events/"):]: v for k, v in events.items()},
      "epochs": history,
      "wall_time_s": sum(r["epoch_wall_s"] for r in history),
      "samples_per_s": float(np.mean(speeds)) if speeds else None,
  }


def summarize_workdir(workdir: str, command: str = "") -> Dict[str, Any]:
  """The summary of the run in ``workdir`` as far as its last checkpoint (e.g. a stopped run)."""
  config = load_config_json(workdir)
  info = load_run_info(workdir)
  with _quiet():
    manager = _checkpoint_manager(workdir)
    step = manager.latest_step()
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints.")
    history = manager.restore(step, args=ocp.args.Composite(history=ocp.args.JsonRestore()))
  return make_summary(config.to_dict(), list(history["history"]), info["git_sha"],
                      command or info["command"])


class _NullWriter:
  """The TensorBoard writer of the processes that do not write (all but the first)."""

  def __getattr__(self, name):
    return lambda *args, **kwargs: None


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       command: Optional[str] = None) -> Dict[str, Any]:
  """Trains ``config`` in ``workdir`` (resuming from its last checkpoint) and returns the summary.

  The summary (also written to ``workdir/summary.json``) holds the config, the command, the git
  sha, per-epoch metrics and throughput.
  """
  config_lib.validate(config)
  os.makedirs(workdir, exist_ok=True)
  check_same_run(config, workdir)
  # In a multi-process run every process computes the same thing; the first one writes the files
  # (orbax coordinates the checkpoints itself, so every process saves).
  primary = jax.process_index() == 0
  sha = git_sha()
  command = command or " ".join(sys.argv)
  if primary:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
    with open(os.path.join(workdir, "run_info.json"), "w") as f:
      json.dump({"git_sha": sha, "command": command, "seed": config.seed,
                 "processes": jax.process_count()}, f)
  logging.info("seed %d, git %s, config:\n%s", config.seed, sha, config)

  # ---------------------------------------------------------------- data
  train = data_lib.load_split(config.dataset, "train", config.data_dir or None, config.download,
                              size=config.train_subset)
  test = data_lib.load_split(config.dataset, "test", config.data_dir or None, config.download,
                             size=config.eval_subset)
  num_classes = config.layer_sizes[-1]
  if train.images.shape[1] != config.layer_sizes[0]:
    raise ValueError(f"config.layer_sizes[0] = {config.layer_sizes[0]} but {config.dataset} "
                     f"images have {train.images.shape[1]} pixels; make them equal.")
  mesh = make_mesh(resolve_num_devices(config))
  train_images, train_labels = replicate((train.images, train.labels), mesh)
  test_batches = eval_batches(test, config.eval_batch_size)
  steps_per_epoch = len(train.labels) // config.batch_size
  total_steps = steps_per_epoch * config.num_epochs

  # ---------------------------------------------------------------- model and state
  algorithm, optimizer = make_algorithm(config, total_steps)
  train_chunk = make_train_chunk(algorithm, num_classes, mesh)
  evaluate = make_evaluate(algorithm, num_classes)
  key = step_key(config.seed)
  eval_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 2)
  with _quiet():
    manager = _checkpoint_manager(workdir)
  state, history = restore_checkpoint(manager, init_state(config, algorithm, optimizer))
  writer = (tensorboard.SummaryWriter(os.path.join(workdir, "tensorboard")) if primary
            else _NullWriter())
  if not history:
    writer.text("config", f"seed {config.seed}, git {sha}\n\n```\n{config}\n```", step=0)

  # ---------------------------------------------------------------- loop
  state = replicate(state, mesh)
  step = int(state.step)
  train_time, train_samples, first_call = 0.0, 0, True
  epoch_chunks: List[Dict[str, np.ndarray]] = []
  epoch_start = time.time()
  while step < total_steps:
    epoch, offset = divmod(step, steps_per_epoch)
    order = data_lib.epoch_order(config.seed, epoch, len(train.labels), config.batch_size)
    stop = min(steps_per_epoch, offset + config.steps_per_call)
    if config.checkpoint_every_steps:
      next_ckpt = (step // config.checkpoint_every_steps + 1) * config.checkpoint_every_steps
      stop = min(stop, offset + next_ckpt - step)
    idx = jnp.asarray(order[offset:stop])

    t0 = time.time()
    state, metrics = train_chunk(state, train_images, train_labels, idx, key)
    metrics = jax.device_get(metrics)
    elapsed = time.time() - t0
    if not first_call:  # The first call compiles; leave it out of the throughput.
      train_time += elapsed
      train_samples += idx.size
    first_call = False
    check_finite(metrics, step)
    step = int(state.step)
    epoch_chunks.append(metrics)
    for name, values in metrics.items():
      writer.scalar(f"train/{name}", float(np.mean(values)), step)
    writer.scalar("train/samples_per_s", idx.size / elapsed, step)

    if step % steps_per_epoch == 0:
      train_metrics = _mean_metrics(epoch_chunks)
      test_metrics = evaluate_split(evaluate, state.params, test_batches, eval_key)
      record = {"epoch": epoch + 1, "step": step,
                **{f"train_{k}": v for k, v in train_metrics.items()},
                "test_accuracy": test_metrics["accuracy"], "test_loss": test_metrics["loss"],
                "epoch_wall_s": time.time() - epoch_start,
                "samples_per_s": train_samples / train_time if train_time else None}
      history.append(record)
      for name in ("test_accuracy", "test_loss"):
        writer.scalar(f"eval/{name[5:]}", record[name], step)
      writer.flush()
      norms = ", ".join(f"{k[len('train_grad_norm/'):]} {v:.3g}" for k, v in record.items()
                        if k.startswith("train_grad_norm/"))
      logging.info("epoch %d: test accuracy %.4f, train accuracy %.4f, loss %.4f, residual "
                   "%.2e, update norms (%s), %.0f samples/s", epoch + 1,
                   record["test_accuracy"], record["train_accuracy"], record["train_loss"],
                   record["train_residual"], norms, record["samples_per_s"] or float("nan"))
      if not np.isfinite(record["test_loss"]):
        raise FloatingPointError(f"Training diverged: test_loss = {record['test_loss']} after "
                                 f"epoch {epoch + 1} (step {step}).")
      epoch_chunks, epoch_start = [], time.time()
      save_checkpoint(manager, state, history)
    elif config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0:
      save_checkpoint(manager, state, history)
  writer.close()

  summary = make_summary(json.loads(config.to_json_best_effort()), history, sha, command)
  if primary:
    with open(os.path.join(workdir, "summary.json"), "w") as f:
      json.dump(summary, f, indent=2)
  return summary
