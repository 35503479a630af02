r"""Energy per example of a trained EqSpike run, on neuromorphic chips and on a GPU.

  python -m launch.energy --workdir runs/mnist_eqspike \
      [--energy configs/energy.py] [--energy.loihi.e_sop.value=30] \
      [--output results/energy_mnist_eqspike.json]

Prints the table and writes the JSON report to --output, then a copy to WORKDIR/energy.json; a
workdir that cannot be written to is only read (one line says so), so the report is not lost.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from eqspike_jax.analysis import energy_report
from eqspike_jax.analysis import reports

_ENERGY = config_flags.DEFINE_config_file("energy", "configs/energy.py",
                                          "Energy constants and scenarios.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "The workdir of a trained EqSpike run.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the JSON report here.")
flags.mark_flags_as_required(["workdir"])

REPORT_FILE = "energy.json"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  report = energy_report.report_for_workdir(_WORKDIR.value, _ENERGY.value)
  print(energy_report.format_table(report))
  paths = reports.report_paths(_WORKDIR.value, REPORT_FILE, _OUTPUT.value)
  written = energy_report.write_report(report, paths, optional=paths[-1:])
  print("\nwrote " + (", ".join(written) or "nothing"))


if __name__ == "__main__":
  app.run(main)
