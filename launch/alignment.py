r"""The per-layer alignment of EqSpike's estimate with its noise-free twin, rate EP and the gradient.

  python -m launch.alignment --config configs/alignment.py \
      [--output results/alignment.json] [--figure results/alignment.png]

Prints one line per point and writes the JSON (and the figure) at the end. Redraw the figure
of a written report with ``--from_json results/alignment.json --figure results/alignment.png``.
"""

import json

from absl import app
from absl import flags
from ml_collections import config_flags

from eqspike_jax import plots
from eqspike_jax.analysis import alignment_report
from eqspike_jax.analysis import reports

_CONFIG = config_flags.DEFINE_config_file("config", "configs/alignment.py", "The sweep.",
                                          lock_config=True)
_OUTPUT = flags.DEFINE_string("output", "results/alignment.json", "Where the JSON goes.")
_FIGURE = flags.DEFINE_string("figure", "", "Also draw the figure here (PNG).")
_FROM_JSON = flags.DEFINE_string("from_json", "", "Draw --figure from this report; measure nothing.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if _FROM_JSON.value:
    with open(_FROM_JSON.value) as f:
      report = json.load(f)
    print("wrote " + plots.save(alignment_report.figure(report), _FIGURE.value))
    return
  report = alignment_report.sweep(_CONFIG.value, log=lambda line: print(line, flush=True))
  written = reports.write_json(report, [_OUTPUT.value])
  if _FIGURE.value:
    written.append(plots.save(alignment_report.figure(report), _FIGURE.value))
  print("wrote " + ", ".join(written))


if __name__ == "__main__":
  app.run(main)
