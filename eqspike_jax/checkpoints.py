"""Checkpoints a run can trust: verified on restore, older ones when the newest is damaged.

Each checkpoint (orbax, one directory per step under ``WORKDIR/checkpoints``) holds three items:
``state`` (the train state), ``history`` (the per-epoch records) and ``meta`` (the config it was
trained with and the running sums of a partly done epoch). After every save the SHA-256 of the
step's files goes into ``WORKDIR/checksums.json``; a restore verifies it first, so flipped bytes
or a truncated file are detected instead of trusted, and it falls back to the newest checkpoint
that verifies and restores, saying so. A full disk is reported in one line.
"""

import contextlib
import errno
import hashlib
import json
import os
import shutil
from typing import Any, Dict, List, Optional, Tuple

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

CHECKSUM_FILE = "checksums.json"


class CheckpointError(RuntimeError):
  """No checkpoint of a run can be trusted, or one could not be written."""


@contextlib.contextmanager
def quiet():
  """Orbax logs a dozen INFO lines per save; keep the training log readable."""
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.WARNING)
  try:
    yield
  finally:
    logging.set_verbosity(verbosity)


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), "checkpoints")


def manager_for(workdir: str, create: bool = True) -> ocp.CheckpointManager:
  """The run's manager; ``create=False`` for readers, which must not create directories."""
  options = ocp.CheckpointManagerOptions(max_to_keep=2, create=create,
                                         enable_async_checkpointing=False)
  # Named handlers let a reader ask for an item's metadata (shapes) without a target tree.
  handlers = {"state": ocp.StandardCheckpointHandler(), "history": ocp.JsonCheckpointHandler(),
              "meta": ocp.JsonCheckpointHandler()}
  with quiet():
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options, item_handlers=handlers)


# ================================================================================================
# Checksums.
# ================================================================================================


def step_checksum(workdir: str, step: int) -> Optional[str]:
  """SHA-256 over every file of the step's directory (relative path and bytes); None if absent."""
  root = os.path.join(checkpoint_dir(workdir), str(step))
  if not os.path.isdir(root):
    return None
  digest = hashlib.sha256()
  for folder, dirs, names in os.walk(root):
    dirs.sort()
    for name in sorted(names):
      path = os.path.join(folder, name)
      digest.update(os.path.relpath(path, root).encode())
      with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          digest.update(block)
  return digest.hexdigest()


def _read_checksums(workdir: str) -> Dict[str, str]:
  path = os.path.join(workdir, CHECKSUM_FILE)
  if not os.path.exists(path):
    return {}
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError):
    return {}  # Every checkpoint then counts as unverified, and none is trusted.


def _write_checksums(workdir: str, sums: Dict[str, str]) -> None:
  path = os.path.join(workdir, CHECKSUM_FILE)
  with open(path + ".tmp", "w") as f:  # Written whole, then renamed: never half a file.
    json.dump(sums, f, indent=1)
  os.replace(path + ".tmp", path)


def verify(workdir: str, step: int) -> Optional[str]:
  """Why the checkpoint at ``step`` cannot be trusted, or None when it verifies.

  A run written before checksums were recorded has no ``checksums.json`` at all: its
  checkpoints are read as they are (orbax still refuses incomplete ones).
  """
  if not os.path.exists(os.path.join(workdir, CHECKSUM_FILE)):
    return None
  expected = _read_checksums(workdir).get(str(step))
  if expected is None:
    return "has no recorded checksum (its save did not finish)"
  actual = step_checksum(workdir, step)
  if actual is None:
    return "is missing"
  if actual != expected:
    return "does not match its checksum (damaged files)"
  return None


# ================================================================================================
# Save and restore.
# ================================================================================================


def _is_disk_full(error: BaseException) -> bool:
  while error is not None:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
      return True
    if "No space left on device" in str(error):
      return True
    error = error.__cause__ or error.__context__
  return False


def _nbytes(tree) -> int:
  return int(sum(np.asarray(a).nbytes for a in jax.tree.leaves(tree)))


def save(manager: ocp.CheckpointManager, workdir: str, state: Any, history: List[dict],
         meta: Dict[str, Any]) -> None:
  """Saves the state, history and meta at ``state.step`` and records the checksum."""
  step = int(state.step)
  try:
    with quiet():
      manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), history=ocp.args.JsonSave(history),
          meta=ocp.args.JsonSave(meta)))
      manager.wait_until_finished()
  except Exception as e:  # pylint: disable=broad-except
    if not _is_disk_full(e):
      raise
    free = shutil.disk_usage(workdir).free
    raise CheckpointError(
        f"saving the checkpoint of step {step} failed: no space left on the device of "
        f"{checkpoint_dir(workdir)} (a checkpoint needs about {_nbytes(state) / 1e6:.1f} MB, "
        f"{free / 1e6:.1f} MB are free). Free some space and rerun the same command: it resumes "
        f"from the last checkpoint that was saved.") from None
  if jax.process_index() == 0:  # Every process saves its shards; the first records the sum.
    sums = {k: v for k, v in _read_checksums(workdir).items() if int(k) in manager.all_steps()}
    sums[str(step)] = step_checksum(workdir, step)
    _write_checksums(workdir, sums)


def _restore_step(manager, step: int, abstract) -> Dict[str, Any]:
  with quiet():
    return manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), history=ocp.args.JsonRestore(),
        meta=ocp.args.JsonRestore()))


def restore(manager: ocp.CheckpointManager, workdir: str, state: Any
            ) -> Tuple[Any, List[dict], Optional[Dict[str, Any]]]:
  """The newest checkpoint that verifies and restores: ``(state, history, meta)``.

  Damaged newer checkpoints are reported and deleted (the run continues from the older one and
  would write over their steps). With no checkpoint at all, ``(state, [], None)``.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  problems = []
  for step in steps:
    problem = verify(workdir, step)
    if problem is None:
      try:
        restored = _restore_step(manager, step, abstract)
      except Exception as e:  # pylint: disable=broad-except
        problem = f"does not restore ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
    if problem is not None:
      problems.append(f"the checkpoint of step {step} {problem}")
      continue
    for line in problems:
      logging.warning("%s: deleted; resuming from step %d instead.", line, step)
    for bad in steps[:len(problems)]:
      with quiet():
        manager.delete(bad)
    logging.info("Resumed from the checkpoint at step %d.", step)
    return restored["state"], list(restored["history"] or []), restored["meta"]
  if steps:
    raise CheckpointError(f"no checkpoint in {checkpoint_dir(workdir)} can be trusted: "
                          f"{'; '.join(problems)}. Move the directory away to start the run over.")
  return state, [], None


def newest_verified(workdir: str) -> Tuple[ocp.CheckpointManager, int]:
  """For readers: the manager and the newest step that verifies (raises when there is none)."""
  if not os.path.isdir(checkpoint_dir(workdir)):
    raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(workdir)}: train the run (or let "
                            f"it reach its first epoch) before reading it.")
  manager = manager_for(workdir, create=False)
  for step in sorted(manager.all_steps(), reverse=True):
    problem = verify(workdir, step)
    if problem is None:
      return manager, step
    logging.warning("the checkpoint of step %d %s; reading an older one.", step, problem)
  raise FileNotFoundError(f"no verified checkpoint in {checkpoint_dir(workdir)}: train the run "
                          f"(or let it reach its first epoch) before reading it.")
