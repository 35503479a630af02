"""What the analyses share about runs and reports: which runs they accept, where reports go.

A report is written to ``--output`` first and then, as a copy beside the run, to
``WORKDIR/<name>.json``; a workdir the analysis may not write to (a read-only mount, another
user's run) is only read, so the report computed from it is never lost to a failed write.
"""

import json
import os
from typing import Any, Callable, List, Optional, Sequence

import ml_collections
import numpy as np

from eqspike_jax import registry


def is_eqspike_run(config: ml_collections.ConfigDict) -> bool:
  """Whether ``config`` trains the spiking model (the registry resolves the name)."""
  from eqspike_jax.models import eqspike  # pylint: disable=g-import-not-at-top
  return registry.model_module(config.model) is eqspike


def require_eqspike_run(config: ml_collections.ConfigDict, workdir: str, why: str) -> None:
  """Raises unless the run in ``workdir`` is an EqSpike run; ``why`` says what needs one."""
  if not is_eqspike_run(config):
    raise ValueError(f"{workdir} holds a {config.model!r} run: {why}")


def report_paths(workdir: str, filename: str, output: Optional[str]) -> List[str]:
  """``output`` (when given), then ``WORKDIR/filename``: the order the report is written in."""
  return ([output] if output else []) + [os.path.join(workdir, filename)]


def _kept(written: Sequence[str]) -> str:
  if written:
    return f"the report is only in {', '.join(written)}"
  return "the report is not kept: pass --output"


def write_json(obj: Any, paths: Sequence[str], optional: Sequence[str] = (), indent: int = 1,
               log: Callable[[str], None] = print) -> List[str]:
  """Writes ``obj`` as JSON to every path in order; returns the paths written.

  A path in ``optional`` (the copy in the workdir) that cannot be written is skipped with one
  line through ``log``; any other failure raises. Only the directory of a path that is not
  optional is created.
  """
  written = []
  for path in paths:
    directory = os.path.dirname(path)
    if path in optional:
      if not os.access(directory or ".", os.W_OK):
        log(f"not writing {path}: {directory or '.'} is not writable ({_kept(written)}).")
        continue
    elif directory:
      os.makedirs(directory, exist_ok=True)
    try:
      with open(path, "w") as f:
        json.dump(obj, f, indent=indent, default=lambda a: np.asarray(a).tolist())
    except OSError as e:
      if path not in optional:
        raise
      log(f"not writing {path}: {e.strerror or e} ({_kept(written)}).")
      continue
    written.append(path)
  return written
