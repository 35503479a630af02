"""A run's directory: its config, provenance, checkpoints and summary.

Shared by the trainer, the analyses, the notebooks and the benchmarks, so reading a run never
imports the trainer, and loading a run's parameters needs no optimizer. Layout::

  WORKDIR/config.json     the config the run was started with (resuming requires the same)
  WORKDIR/run_info.json   git sha, command, seed, devices and processes of the training run
  WORKDIR/checkpoints/    orbax checkpoints: {"state": TrainState, "history": per-epoch records}
  WORKDIR/summary.json    what results/ keeps of a finished run
  WORKDIR/tensorboard/    event files
"""

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from absl import logging
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from eqspike_jax import checkpoints
from eqspike_jax import config_lib
from eqspike_jax.network import Layer

CONFIG_FILE = "config.json"
RUN_INFO_FILE = "run_info.json"
SUMMARY_FILE = "summary.json"

# Fields a resumed run may change: they do not alter the steps already taken.
RESUMABLE_FIELDS = ("num_epochs", "checkpoint_every_steps", "steps_per_call", "data_dir",
                    "download", "eval_batch_size", "num_devices", "stop_on_collapse")


# ================================================================================================
# Provenance and run files.
# ================================================================================================


def git_sha() -> str:
  """The sha of the checkout this package runs from, ``-dirty`` with uncommitted edits."""
  here = os.path.dirname(os.path.abspath(__file__))
  try:
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                         check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, check=True).stdout.strip()
    return sha + ("-dirty" if dirty else "")
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def _read_json(path: str) -> Any:
  try:
    with open(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is damaged ({e}): restore it, or start the run in a fresh "
                     f"--workdir.") from None


def write_run_files(workdir: str, config: ml_collections.ConfigDict, info: Dict[str, Any]) -> None:
  """``config.json`` and ``run_info.json`` (provenance: sha, command, seed, devices)."""
  with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  with open(os.path.join(workdir, RUN_INFO_FILE), "w") as f:
    json.dump(info, f)


def run_info(sha: str, command: str, seed: int, devices) -> Dict[str, Any]:
  """The provenance of a training run, recorded where it trains."""
  return {"git_sha": sha, "command": command, "seed": seed,
          "devices": [str(d) for d in devices], "processes": jax.process_count()}


def with_defaults(data: Dict[str, Any]) -> Dict[str, Any]:
  """A saved config (JSON dict) completed with the defaults of fields added after it was saved.

  A field is only ever added with a default that reproduces what the code did before it
  existed, so an older run reads, resumes and compares as the config it was trained with.
  """
  if "model" not in data:
    return data
  defaults = json.loads(config_lib.base_config(data["model"]).to_json_best_effort())

  def merge(saved, default):
    if not isinstance(saved, dict) or not isinstance(default, dict):
      return saved
    return {**default, **{k: merge(v, default.get(k)) for k, v in saved.items()}}

  return merge(data, defaults)


def _config_from_json(data: dict) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(with_defaults(data))
  # JSON turns tuples into lists; keep the types the config files use.
  config.layer_sizes = tuple(config.layer_sizes)
  config.learning_rates = tuple(config.learning_rates)
  config.conv_layers = tuple(tuple(layer) for layer in config.conv_layers)
  config.input_shape = tuple(config.input_shape)
  return config


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run in ``workdir`` was trained with (its ``config.json``)."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist: {workdir!r} is not the workdir of a run. "
                            f"Train one with python -m launch.train --config configs/NAME.py "
                            f"--workdir {workdir}.")
  return _config_from_json(_read_json(path))


def load_run_info(workdir: str) -> Dict[str, Any]:
  """The provenance a run in ``workdir`` recorded; unknown when absent."""
  path = os.path.join(workdir, RUN_INFO_FILE)
  if not os.path.exists(path):
    return {"git_sha": "unknown", "command": "", "devices": []}
  return _read_json(path)


def config_differences(old: Dict[str, Any], new: Dict[str, Any]) -> Dict[str, Tuple[Any, Any]]:
  """The fields of two configs (as JSON dicts) that differ and would change a resumed run."""
  old, new = with_defaults(old), with_defaults(new)
  resumable = set(RESUMABLE_FIELDS)
  if new.get("lr_schedule", "constant") != "constant":
    resumable.discard("num_epochs")  # The schedule spans the whole run.
  return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
          if k not in resumable and old.get(k) != new.get(k)}


def _refuse_differences(what: str, changed: Dict[str, Tuple[Any, Any]]) -> None:
  if changed:
    raise ValueError(f"{what} with a different config (fields {sorted(changed)} differ: "
                     f"{changed}). Use a fresh --workdir, or the same config to resume that run.")


def check_same_run(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses to resume a workdir that was started with a different config."""
  path = os.path.join(workdir, CONFIG_FILE)
  if os.path.exists(path):
    _refuse_differences(f"{workdir} holds a run", config_differences(
        _read_json(path), json.loads(config.to_json_best_effort())))


def check_workdir(workdir: str) -> None:
  """Refuses a workdir that cannot hold a run, before any work."""
  if not workdir or not workdir.strip():
    raise ValueError("--workdir is empty: give the directory the run writes to, e.g. "
                     "--workdir runs/NAME.")
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ValueError(f"--workdir {workdir} is a file, not a directory: give a directory (it is "
                     f"created if missing).")


def check_checkpoint_config(saved: Dict[str, Any], config: Dict[str, Any], workdir: str) -> None:
  """Refuses to continue a checkpoint that was trained with a different config.

  Every checkpoint stores its config, so this holds even when ``config.json`` was deleted.
  """
  if saved:
    _refuse_differences(f"the checkpoint in {workdir} was trained", config_differences(
        saved, config))


# ================================================================================================
# One run at a time, and stopping cleanly.
# ================================================================================================


class Stopped(RuntimeError):
  """A run stopped by a signal after saving a checkpoint at its current step."""

  def __init__(self, signame: str, step: int, workdir: str):
    super().__init__(f"stopped by {signame} at step {step}; a checkpoint of that step is in "
                     f"{workdir}/checkpoints. Rerun the same command to resume.")
    self.step = step


class WorkdirBusy(RuntimeError):
  """Another training run holds the workdir."""


LOCK_FILE = "train.lock"


@contextlib.contextmanager
def lock(workdir: str):
  """Holds ``WORKDIR/train.lock`` for the run (process 0 of a multi-process run takes it).

  The lock is an ``flock``: the kernel releases it when the holder dies, so a killed run never
  leaves the workdir locked; the file names the holder for the refusal message.
  """
  if jax.process_index() != 0:
    yield
    return
  path = os.path.join(workdir, LOCK_FILE)
  handle = open(path, "a+")  # pylint: disable=consider-using-with
  try:
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      handle.seek(0)
      holder = handle.read().strip() or "another process"
      raise WorkdirBusy(f"{workdir} is in use by a training run ({holder}): wait for it to end, "
                        f"stop it, or use another --workdir.") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
    handle.flush()
    yield
  finally:
    handle.close()  # Closing releases the lock.


class StopSignals:
  """Turns SIGTERM and SIGINT into a flag the loop checks between jitted calls."""

  def __init__(self):
    self.received: Optional[str] = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    self.received = signal.Signals(signum).name
    logging.warning("%s received: saving a checkpoint after the current call, then stopping.",
                    self.received)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGTERM, signal.SIGINT):
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    return False


# ================================================================================================
# Reading a trained run.
# ================================================================================================


def _params_from_tree(tree) -> Tuple[Layer, ...]:
  """``network.Layer`` tuples from an untyped restore (dicts keyed "0", "1", ... or lists)."""
  items = ([tree[k] for k in sorted(tree, key=int)] if isinstance(tree, dict) else list(tree))
  return tuple(Layer(w=np.asarray(p["w"]), b=np.asarray(p["b"])) for p in items)


def load_trained(workdir: str) -> Tuple[ml_collections.ConfigDict, Tuple[Layer, ...], int]:
  """``(config, params, step)`` of the run's last checkpoint; no optimizer is built."""
  config = load_config(workdir)
  manager, step = checkpoints.newest_verified(workdir)
  # The saved shapes onto this process's first device, whatever mesh or hosts wrote them.
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  with checkpoints.quiet():
    saved = manager.item_metadata(step)["state"]
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                          saved)
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target)))
  return config, _params_from_tree(restored["state"]["params"]), int(step)


def load_history(workdir: str) -> List[dict]:
  """The per-epoch records of the run's last checkpoint."""
  manager, step = checkpoints.newest_verified(workdir)
  with checkpoints.quiet():
    restored = manager.restore(step, args=ocp.args.Composite(history=ocp.args.JsonRestore()))
  return list(restored["history"] or [])


# ================================================================================================
# Summaries.
# ================================================================================================


def make_summary(config: Dict[str, Any], history: List[dict], info: Dict[str, Any],
                 command: Optional[str] = None) -> Dict[str, Any]:
  """The run summary committed to results/: provenance, the per-epoch curve, throughput."""
  speeds = [r["samples_per_s"] for r in history if r.get("samples_per_s")]
  prefix = "train_events/"
  events = {k[len(prefix):]: v for k, v in history[-1].items()
            if k.startswith(prefix)} if history else {}
  return {
      "config_name": config.get("name", ""),
      "command": command or info.get("command", ""),
      "git_sha": info.get("git_sha", "unknown"),
      "seed": config.get("seed"),
      "config": config,
      "devices": info.get("devices", []),
      "test_accuracy_per_epoch": [r["test_accuracy"] for r in history],
      "final_test_accuracy": history[-1]["test_accuracy"] if history else None,
      "best_test_accuracy": max((r["test_accuracy"] for r in history), default=None),
      "events_per_example_last_epoch": events,
      "epochs": history,
      "wall_time_s": sum(r["epoch_wall_s"] for r in history),
      "samples_per_s": float(np.mean(speeds)) if speeds else None,
  }


def summarize(workdir: str, command: str = "") -> Dict[str, Any]:
  """The summary of the run in ``workdir`` as far as its last checkpoint (e.g. a stopped run)."""
  config = load_config(workdir)
  return make_summary(config.to_dict(), load_history(workdir), load_run_info(workdir),
                      command or None)


def write_summary(workdir: str, summary: Dict[str, Any]) -> None:
  with open(os.path.join(workdir, SUMMARY_FILE), "w") as f:
    json.dump(summary, f, indent=2)
