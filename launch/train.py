r"""Trains a config: ``python -m launch.train --config configs/NAME.py[:quick] --workdir DIR``.

Rerunning the same command resumes from the last checkpoint in DIR; SIGTERM or Ctrl-C saves a
checkpoint at the current step first. A refused input (a bad config value, an unknown field, a
missing dataset, a busy or damaged workdir) ends with one line saying what and how to fix it.

Several hosts (or processes): run the same command on each, with ``--distributed`` (JAX finds
the cluster: SLURM, Cloud TPU) or with the coordinator given explicitly, e.g. for two processes:

  python -m launch.train --config ... --workdir DIR --coordinator_address host0:1234 \
      --num_processes 2 --process_id 0     # and --process_id 1 on the other
"""

import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from eqspike_jax import checkpoints
from eqspike_jax import data
from eqspike_jax import distributed
from eqspike_jax import monitor
from eqspike_jax import train
from eqspike_jax import workdir

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, TensorBoard events, summary.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Join a multi-process run; JAX detects "
                                 "the cluster unless --coordinator_address is given.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0 of a multi-process run.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in the run.")
flags.mark_flags_as_required(["config", "workdir"])

USAGE = ("usage: python -m launch.train --config configs/NAME.py[:quick] --workdir DIR "
         "[--config.FIELD=VALUE ...], e.g. --config.learning_rates='(5e-4, 5e-4)'")
# What a user can fix: one line, no traceback.
REFUSALS = (ValueError, TypeError, FileNotFoundError, data.DatasetNotFoundError,
            checkpoints.CheckpointError, workdir.WorkdirBusy, FloatingPointError,
            monitor.TrainingCollapsed)


def _one_line(error: BaseException) -> str:
  return f"{type(error).__name__}: {error}"


def _command_line_refusal(error: BaseException, argv) -> str:
  """One line for a config file that does not load or a config field that does not exist."""
  cause = error.__cause__ or error
  if isinstance(cause, AttributeError):
    field = str(cause).strip("'\"")
    given = [a for a in argv if a.startswith("--config.") and field in a.split("=")[0]]
    return (f"unknown config field {field!r} ({' '.join(given) or 'an override'}): check its "
            f"spelling against the config file; a model's own fields live in its section, e.g. "
            f"--config.eqspike.gamma=0.3")
  if isinstance(cause, OSError) or isinstance(error, OSError):
    detail = [l.strip() for l in str(error).splitlines() if "Errno" in l or "Error" in l]
    return (f"the config file could not be loaded ({detail[-1] if detail else _one_line(cause)})"
            f": give an existing file, e.g. --config configs/mnist_eqspike.py")
  return f"the command line was refused: {_one_line(cause)}"


def _refuse(error: BaseException, argv) -> None:
  print(f"error: {_command_line_refusal(error, argv)}\n{USAGE}", file=sys.stderr)
  sys.exit(2)


def parse_flags(argv):
  """absl's parsing, with a bad config file or field refused in one line."""
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except
    _refuse(e, argv)


def _config():
  """The config (ml_collections loads the file and applies overrides on first access)."""
  try:
    config = _CONFIG.value
    config.keys()  # A file that failed to load is a placeholder that raises on first use.
    return config
  except Exception as e:  # pylint: disable=broad-except
    _refuse(e, sys.argv)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if _DISTRIBUTED.value or _COORDINATOR.value:
    distributed.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  try:
    train.train_and_evaluate(_config(), _WORKDIR.value,
                             command=" ".join(["python -m launch.train"] + sys.argv[1:]))
  except workdir.Stopped as e:
    print(str(e), file=sys.stderr)
    sys.exit(130)
  except REFUSALS as e:
    print(f"error: {_one_line(e)}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
