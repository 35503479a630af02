r"""The STDP measurements of a trained EqSpike run (EQSPIKE.md section 5).

  python -m launch.stdp --workdir runs/mnist_eqspike --output results/stdp_mnist_eqspike.json

Writes the isolated-synapse windows (weight change against t_post - t_pre, at +beta and -beta)
and the in-vivo windows (spike pairs in the nudged phases of the run at its first step and at its
last checkpoint) to ``--output`` and then to ``WORKDIR/stdp.json`` (skipped, with one line, when
the workdir cannot be written to), and prints a summary.
"""

from absl import app
from absl import flags

from eqspike_jax.analysis import reports
from eqspike_jax.analysis import stdp

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of a trained EqSpike run.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the report here (e.g. results/).")
_NUM_EXAMPLES = flags.DEFINE_integer("num_examples", 2000, "Training images measured in vivo.")
_MAX_LAG = flags.DEFINE_integer("max_lag", 8, "Largest |t_post - t_pre| in vivo (< t_nudge).")
flags.mark_flags_as_required(["workdir"])

REPORT_FILE = "stdp.json"


def _row(values) -> str:
  return " ".join(f"{v:+.2e}" for v in values)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  out = stdp.report(_WORKDIR.value, _NUM_EXAMPLES.value, _MAX_LAG.value)
  for name in ("input/plus", "input/minus", "free/plus"):
    window = out["isolated"][name]
    print(f"isolated {name:12s} dt {window['dt'][0]}..{window['dt'][-1]}: {_row(window['dw'])}")
  for name, entry in out["in_vivo"].items():
    for l in range(len([k for k in entry if k.endswith("/symmetric/change")])):
      print(f"in vivo {name} (step {entry['step']}) layer {l}, symmetric EP change per pair, "
            f"lags {entry['lags'][0]}..{entry['lags'][-1]}: "
            f"{_row(entry[f'layer{l}/symmetric/change'])}; STDP sign at "
            f"{100 * entry[f'layer{l}/symmetric/stdp_sign_fraction']:.0f} % of lags")
  paths = reports.report_paths(_WORKDIR.value, REPORT_FILE, _OUTPUT.value)
  for path in reports.write_json(out, paths, optional=paths[-1:]):
    print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
