r"""Headline groups over seeds: mean and spread from the committed summaries, and their curves.

  python -m launch.curves --config configs/curves.py \
      [--output results/issue10_seeds.json] [--figure results/issue10_curves.png]
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from eqspike_jax import plots
from eqspike_jax.analysis import reports
from eqspike_jax.analysis import seeds

_CONFIG = config_flags.DEFINE_config_file("config", "configs/curves.py", "The groups.",
                                          lock_config=True)
_OUTPUT = flags.DEFINE_string("output", "", "Where the JSON goes (none when empty).")
_FIGURE = flags.DEFINE_string("figure", "", "Where the figure goes (PNG; none when empty).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  report = seeds.report(_CONFIG.value)
  for panel in report["panels"]:
    print(seeds.line(panel))
  written = reports.write_json(report, [_OUTPUT.value]) if _OUTPUT.value else []
  if _FIGURE.value:
    written.append(plots.save(plots.seed_panels(report), _FIGURE.value))
  if written:
    print("wrote " + ", ".join(written))


if __name__ == "__main__":
  app.run(main)
