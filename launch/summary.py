r"""Writes the summary of a run, finished or stopped, from its workdir's last checkpoint.

  python -m launch.summary --workdir DIR --out results/NAME.json [--command "how it was run"]
"""

import json

from absl import app
from absl import flags

from eqspike_jax import workdir

_WORKDIR = flags.DEFINE_string("workdir", None, "The run's workdir.")
_OUT = flags.DEFINE_string("out", None, "Where to write the JSON summary.")
_COMMAND = flags.DEFINE_string("command", "", "The command that ran it, for the record.")
flags.mark_flags_as_required(["workdir", "out"])


def main(argv):
  del argv
  summary = workdir.summarize(_WORKDIR.value, _COMMAND.value)
  with open(_OUT.value, "w") as f:
    json.dump(summary, f, indent=2)
  print(f"{_OUT.value}: epochs {summary['test_accuracy_per_epoch']}")


if __name__ == "__main__":
  app.run(main)
