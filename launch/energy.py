r"""Energy per example of a trained EqSpike run, on neuromorphic chips and on a GPU.

  python -m launch.energy --workdir runs/mnist_eqspike \
      [--energy configs/energy.py] [--energy.loihi.e_sop.value=30] \
      [--output results/energy_mnist_eqspike.json]

Prints the table and writes the JSON report to WORKDIR/energy.json (and to --output).
"""

import os

from absl import app
from absl import flags
from ml_collections import config_flags

from eqspike_jax import energy

_ENERGY = config_flags.DEFINE_config_file("energy", "configs/energy.py",
                                          "Energy constants and scenarios.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "The workdir of a trained EqSpike run.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the JSON report here.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  report = energy.report_for_workdir(_WORKDIR.value, _ENERGY.value)
  print(energy.format_table(report))
  paths = [os.path.join(_WORKDIR.value, "energy.json")] + ([_OUTPUT.value] if _OUTPUT.value else [])
  energy.write_report(report, paths)
  print("\nwrote " + ", ".join(paths))


if __name__ == "__main__":
  app.run(main)
