r"""Trains a config: ``python -m launch.train --config configs/NAME.py[:quick] --workdir DIR``.

Rerunning the same command resumes from the last checkpoint in DIR.

Several hosts (or processes): run the same command on each, with ``--distributed`` (JAX finds
the cluster: SLURM, Cloud TPU) or with the coordinator given explicitly, e.g. for two processes:

  python -m launch.train --config ... --workdir DIR --coordinator_address host0:1234 \
      --num_processes 2 --process_id 0     # and --process_id 1 on the other
"""

import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from eqspike_jax import train

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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if _DISTRIBUTED.value or _COORDINATOR.value:
    train.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  train.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                           command=" ".join(["python -m launch.train"] + sys.argv[1:]))


if __name__ == "__main__":
  app.run(main)
