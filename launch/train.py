r"""Trains a config: ``python -m launch.train --config configs/NAME.py[:quick] --workdir DIR``.

Rerunning the same command resumes from the last checkpoint in DIR.
"""

import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from eqspike_jax import train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, TensorBoard events, summary.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  train.train_and_evaluate(_CONFIG.value, _WORKDIR.value, command=" ".join(["python -m launch.train"] + sys.argv[1:]))


if __name__ == "__main__":
  app.run(main)
