r"""The accuracy-energy frontier: train every point of the sweep, price its events, find the front.

  python -m launch.frontier --config configs/frontier.py --workdir runs/frontier \
      [--output results/frontier.json] [--figure results/frontier.png]

Trains each point in WORKDIR/NAME (resuming a stopped one; a finished one is only measured),
prints one line per point and writes the JSON (and the figure) at the end. Redraw the figure of
a written report with ``--from_json results/frontier.json --figure results/frontier.png``.
"""

import json

from absl import app
from absl import flags
from ml_collections import config_flags

from eqspike_jax import plots
from eqspike_jax import train
from eqspike_jax.analysis import frontier
from eqspike_jax.analysis import reports

_CONFIG = config_flags.DEFINE_config_file("config", "configs/frontier.py", "The sweep.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/frontier", "Each point trains in WORKDIR/NAME.")
_OUTPUT = flags.DEFINE_string("output", "results/frontier.json", "Where the JSON goes.")
_FIGURE = flags.DEFINE_string("figure", "", "Also draw the figure here (PNG).")
_FROM_JSON = flags.DEFINE_string("from_json", "", "Draw --figure from this report; train nothing.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if _FROM_JSON.value:
    with open(_FROM_JSON.value) as f:
      report = json.load(f)
  else:
    report = frontier.sweep(_CONFIG.value, _WORKDIR.value, train.train_and_evaluate,
                            log=lambda line: print(line, flush=True))
  written = [] if _FROM_JSON.value else reports.write_json(report, [_OUTPUT.value])
  if _FIGURE.value:
    written.append(plots.save(frontier.figure(report), _FIGURE.value))
  target = report["target"]
  print(f"target ({target['accuracy']:.1%} at <= {target['inference_uj']} / "
        f"{target['training_uj']} uJ on {target['chip']}): met by "
        f"{', '.join(target['met_by']) or 'no point'}")
  print("wrote " + (", ".join(written) or "nothing"))


if __name__ == "__main__":
  app.run(main)
