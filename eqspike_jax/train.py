"""Training and evaluation loop shared by every model: ``train_and_evaluate(config, workdir)``.

One jit call runs ``config.steps_per_call`` training steps in a ``lax.scan`` over index batches
into the device-resident training set, so Python and host-device copies cost nothing per step.
The order of every epoch is a pure function of ``(seed, epoch)`` and each step's random key is
``fold_in(key, step)``: a run restored from a checkpoint at any step continues exactly as the
uninterrupted run would have. Run files and checkpoints are ``workdir``'s business.
"""

import json
import os
import sys
import time
from typing import Any, Callable, Dict, Optional, Tuple

from absl import logging
import chex
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from eqspike_jax import augment as augment_lib
from eqspike_jax import checkpoints
from eqspike_jax import config_lib
from eqspike_jax import data as data_lib
from eqspike_jax import distributed
from eqspike_jax import ep_core
from eqspike_jax import events_writer
from eqspike_jax import metrics as metrics_lib
from eqspike_jax import monitor
from eqspike_jax import optim
from eqspike_jax import quantize
from eqspike_jax import registry
from eqspike_jax import workdir as workdir_lib


@flax.struct.dataclass
class TrainState:
  step: chex.Array       # Global training step: batches seen so far (int32 scalar).
  params: Any            # The network (a tuple of network.Layer).
  opt_state: Any         # The optax state.


def make_algorithm(config: ml_collections.ConfigDict, total_steps: int = 0
                   ) -> Tuple[ep_core.Algorithm, optax.GradientTransformation]:
  """The model's algorithm and its optimizer; ``total_steps`` (batches) sets the schedule."""
  steps = total_steps * ep_core.optimizer_steps_per_batch(config.update_mode, config.t_nudge)
  optimizer = optim.make_optimizer(config.optimizer, config.learning_rates, config.momentum,
                                   config.lr_schedule, steps, config.lr_final_fraction)
  if config.synapse_bits:
    optimizer = quantize.quantized(optimizer, config.synapse_bits, config.synapse_range,
                                   config.synapse_rounding, quantize_key(config.seed))
  return registry.make_algorithm(config, optimizer), optimizer


def init_state(config, algorithm, optimizer) -> TrainState:
  params = algorithm.init_params(registry.init_key(config.seed))
  if config.synapse_bits:  # Stored at k bits from the start (nearest level).
    params = quantize.quantize_weights(params, config.synapse_bits, config.synapse_range)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=optimizer.init(params))


def quantize_key(seed: int) -> chex.PRNGKey:
  """The stochastic rounding's stream: stream 2 of the seed."""
  return jax.random.fold_in(jax.random.PRNGKey(seed), 2)


def step_key(seed: int) -> chex.PRNGKey:
  """Root of the per-step keys; stream 1 (stream 0 initialises the parameters)."""
  return jax.random.fold_in(jax.random.PRNGKey(seed), 1)


# ================================================================================================
# Jitted work: a chunk of training steps, and the evaluation of a whole split.
# ================================================================================================


def make_train_chunk(algorithm, num_classes: int,
                     mesh: Optional[jax.sharding.Mesh] = None,
                     augment: Optional[Callable] = None) -> Callable:
  """``(state, images, labels, idx [K, B], key) -> (state, metrics [K])``, one scan over K steps.

  With a ``mesh`` the chunk is a ``shard_map``: state, images and labels are replicated, each
  device takes its slice of every global batch (``idx`` split along B), and ``algorithm.update``
  averages the updates over the devices with ``lax.pmean``, so every replica stays equal. Every
  device gets the same step key: the update draws what must be shared (a random beta sign)
  from it and folds in the device index for the rest (``ep_core.split_step_key``).
  ``augment`` (``augment.make_augment``) transforms each batch by its examples' split indices.
  """
  axis_name = None if mesh is None else distributed.AXIS

  def train_chunk(state, images, labels, idx, key):
    chex.assert_rank(idx, 2)

    def body(state, idx_t):
      x = images[idx_t]
      if augment is not None:
        x = augment(x, idx_t, state.step)
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
                                in_specs=(spec(), spec(), spec(), spec(None, distributed.AXIS),
                                          spec()),
                                out_specs=(spec(), spec()), check_vma=False)
  return jax.jit(train_chunk, donate_argnums=0)


def make_evaluate(algorithm, num_classes: int) -> Callable:
  """``(params, images [N_b, B, D], labels [N_b, B], mask [N_b, B], key) -> sums``.

  The loss is the cost of what the prediction reads (``algorithm.predict``), as in training.
  """

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
# The loop.
# ================================================================================================


def _tensorboard_writer(workdir: str) -> events_writer.SummaryWriter:
  return events_writer.SummaryWriter(os.path.join(workdir, "tensorboard"))


class _NullWriter:
  """The TensorBoard writer of the processes that do not write (all but the first)."""

  def __getattr__(self, name):
    return lambda *args, **kwargs: None


def load_data(config: ml_collections.ConfigDict) -> Tuple[data_lib.Split, data_lib.Split]:
  """The training and test splits, checked against the network and the batch size."""
  train = data_lib.load_split(config.dataset, "train", config.data_dir or None, config.download,
                              size=config.train_subset)
  test = data_lib.load_split(config.dataset, "test", config.data_dir or None, config.download,
                             size=config.eval_subset)
  if train.images.shape[1] != config.layer_sizes[0]:
    raise ValueError(f"config.layer_sizes[0] = {config.layer_sizes[0]} but {config.dataset} "
                     f"images have {train.images.shape[1]} pixels; make them equal.")
  if train.num_classes and config.layer_sizes[-1] != train.num_classes:
    raise ValueError(f"config.layer_sizes[-1] = {config.layer_sizes[-1]} but {config.dataset} "
                     f"has {train.num_classes} classes; make the output layer "
                     f"{train.num_classes} units wide.")
  if len(train.labels) < config.batch_size:
    raise ValueError(f"config.batch_size = {config.batch_size} is larger than the "
                     f"{len(train.labels)} training examples, so an epoch would have no step; "
                     f"lower batch_size or raise train_subset.")
  return train, test


def _epoch_record(meter: monitor.EpochMeter, epoch: int, step: int,
                  test: Dict[str, float]) -> dict:
  return {"epoch": epoch, "step": step, **{f"train_{k}": v for k, v in meter.means().items()},
          "test_accuracy": test["accuracy"], "test_loss": test["loss"],
          "epoch_wall_s": time.time() - meter.start, "samples_per_s": meter.samples_per_s}


def _log_epoch(record: dict) -> None:
  norms = ", ".join(f"{k[len('train_grad_norm/'):]} {v:.3g}" for k, v in record.items()
                    if k.startswith("train_grad_norm/"))
  logging.info("epoch %d: test accuracy %.4f, train accuracy %.4f, loss %.4f, residual %.2e, "
               "update norms (%s), %.0f samples/s", record["epoch"], record["test_accuracy"],
               record["train_accuracy"], record["train_loss"], record["train_residual"], norms,
               record["samples_per_s"] or float("nan"))
  if not np.isfinite(record["test_loss"]):
    raise FloatingPointError(f"Training diverged: test_loss = {record['test_loss']} after "
                             f"epoch {record['epoch']} (step {record['step']}).")


def _chunk_bounds(config, step: int, steps_per_epoch: int) -> Tuple[int, int]:
  """The epoch's steps the next call runs: up to the epoch's end or the next checkpoint."""
  offset = step % steps_per_epoch
  stop = min(steps_per_epoch, offset + config.steps_per_call)
  if config.checkpoint_every_steps:
    next_ckpt = (step // config.checkpoint_every_steps + 1) * config.checkpoint_every_steps
    stop = min(stop, offset + next_ckpt - step)
  return offset, stop


def _start(config, workdir: str, command: Optional[str]):
  """Validation, the data and the mesh, then the workdir's run files: everything before training.

  The run files are written last, so a start that fails (a bad input size, a dataset typo) does
  not leave a ``config.json`` that would refuse the corrected command.
  """
  config_lib.validate(config)
  for line in config_lib.warnings(config):
    logging.warning("%s", line)
  workdir_lib.check_workdir(workdir)
  workdir_lib.check_same_run(config, workdir)
  train, test = load_data(config)
  mesh = distributed.make_mesh(distributed.resolve_num_devices(config))
  info = workdir_lib.run_info(workdir_lib.git_sha(), command or " ".join(sys.argv), config.seed,
                              distributed.mesh_devices(mesh))
  os.makedirs(workdir, exist_ok=True)
  # In a multi-process run every process computes the same thing; the first one writes the files
  # (orbax coordinates the checkpoints itself, so every process saves).
  if jax.process_index() == 0:
    workdir_lib.write_run_files(workdir, config, info)
  logging.info("seed %d, git %s, config:\n%s", config.seed, info["git_sha"], config)
  return train, test, mesh, info


class _Run:
  """The mutable side of one training run: its checkpoints, history, writer and epoch sums."""

  def __init__(self, config, workdir, algorithm, optimizer, info, steps_per_epoch, total_steps):
    self.config, self.workdir, self.info = config, workdir, info
    self.config_json = json.loads(config.to_json_best_effort())
    self.manager = checkpoints.manager_for(workdir)
    state, self.history, meta = checkpoints.restore(
        self.manager, workdir, init_state(config, algorithm, optimizer))
    if meta is not None:
      workdir_lib.check_checkpoint_config(meta.get("config", {}), self.config_json, workdir)
    self.state = state
    self.meter = monitor.EpochMeter.resumed(steps_per_epoch, total_steps,
                                            (meta or {}).get("epoch"))
    self.writer = (_tensorboard_writer(workdir) if jax.process_index() == 0 else _NullWriter())
    if not self.history:
      self.writer.text("config", f"seed {config.seed}, git {info['git_sha']}\n\n```\n{config}"
                                 f"\n```", 0)

  @property
  def last_checkpoint(self) -> Optional[int]:
    return self.manager.latest_step()

  def save(self, state) -> None:
    meta = {"config": self.config_json, "epoch": self.meter.state_dict()}
    checkpoints.save(self.manager, self.workdir, state, self.history, meta)

  def end_epoch(self, state, test_metrics, steps_per_epoch, num_test) -> None:
    step = int(state.step)
    self.history.append(_epoch_record(self.meter, step // steps_per_epoch, step, test_metrics))
    self.writer.scalar("eval/accuracy", test_metrics["accuracy"], step)
    self.writer.scalar("eval/loss", test_metrics["loss"], step)
    self.writer.flush()
    _log_epoch(self.history[-1])
    self.meter = monitor.EpochMeter(steps_per_epoch, self.meter.total_steps)
    self.save(state)
    if self.config.stop_on_collapse:
      monitor.check_health(self.history[-1], self.config.layer_sizes[-1], num_test,
                           self.last_checkpoint)

  def summary(self) -> Dict[str, Any]:
    self.writer.close()
    summary = workdir_lib.make_summary(self.config_json, self.history, self.info,
                                       self.info["command"])
    if jax.process_index() == 0:
      workdir_lib.write_summary(self.workdir, summary)
    return summary


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       command: Optional[str] = None) -> Dict[str, Any]:
  """Trains ``config`` in ``workdir`` (resuming from its last checkpoint) and returns the summary.

  The summary (also written to ``workdir/summary.json``) holds the config, the command, the git
  sha, per-epoch metrics and throughput. SIGTERM or Ctrl-C checkpoints the current step and
  raises ``workdir.Stopped``; the same command resumes.
  """
  train, test, mesh, info = _start(config, workdir, command)
  num_classes, n_train = config.layer_sizes[-1], len(train.labels)
  steps_per_epoch = n_train // config.batch_size
  total_steps = steps_per_epoch * config.num_epochs
  algorithm, optimizer = make_algorithm(config, total_steps)
  train_chunk = make_train_chunk(algorithm, num_classes, mesh, augment_lib.make_augment(config))
  evaluate = make_evaluate(algorithm, num_classes)
  test_batches = eval_batches(test, config.eval_batch_size)
  key, eval_key = step_key(config.seed), jax.random.fold_in(jax.random.PRNGKey(config.seed), 2)
  images, labels = distributed.replicate((train.images, train.labels), mesh)
  with workdir_lib.lock(workdir), workdir_lib.StopSignals() as stop:
    run = _Run(config, workdir, algorithm, optimizer, info, steps_per_epoch, total_steps)
    state, step, compiled = distributed.replicate(run.state, mesh), int(run.state.step), True
    while step < total_steps:
      offset, end = _chunk_bounds(config, step, steps_per_epoch)
      order = data_lib.epoch_order(config.seed, step // steps_per_epoch, n_train,
                                   config.batch_size)
      idx = jnp.asarray(order[offset:end])
      t0 = time.time()
      state, metrics = train_chunk(state, images, labels, idx, key)
      metrics = metrics_lib.flatten(jax.device_get(metrics))
      elapsed = time.time() - t0
      run.meter.add(metrics, idx.size, elapsed, compiled)
      compiled = False
      monitor.check_finite(metrics, step, run.last_checkpoint)
      step = int(state.step)
      for name, values in metrics.items():
        run.writer.scalar(f"train/{name}", float(np.mean(values)), step)
      run.writer.scalar("train/samples_per_s", idx.size / elapsed, step)
      line = run.meter.progress(step)
      if line:
        logging.info("%s", line)
      if step % steps_per_epoch == 0:
        test_metrics = evaluate_split(evaluate, state.params, test_batches, eval_key)
        run.end_epoch(state, test_metrics, steps_per_epoch, len(test.labels))
      elif config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0:
        run.save(state)
      if stop.received and step < total_steps:
        if run.last_checkpoint != step:
          run.save(state)
        raise workdir_lib.Stopped(stop.received, step, workdir)
    return run.summary()
