"""Headlines over seeds (analysis/seeds.py, launch/curves.py): by hand, and on committed runs."""

import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from eqspike_jax import plots
from eqspike_jax.analysis import seeds

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(folder, name, seed, accuracies, config_name="c", **config):
  path = folder / name
  path.write_text(json.dumps({"config_name": config_name, "seed": seed,
                              "config": {"model": "eqspike", "seed": seed, **config},
                              "test_accuracy_per_epoch": accuracies}))
  return path


def test_spread_by_hand(tmp_path):
  _write(tmp_path, "a.json", 0, [0.5, 0.90])
  _write(tmp_path, "b.json", 1, [0.6, 0.92])
  _write(tmp_path, "c.json", 2, [0.7, 0.97])
  group = seeds.load_group(["a.json", "[bc].json"], str(tmp_path))
  assert list(group) == ["a.json", "b.json", "c.json"]
  s = seeds.spread(group)
  assert s["n"] == 3 and s["seeds"] == [0, 1, 2]
  np.testing.assert_allclose(s["mean"], 0.93)  # The final epochs, not the best.
  np.testing.assert_allclose(s["std"], np.sqrt((0.03**2 + 0.01**2 + 0.04**2) / 2))  # ddof 1.
  assert seeds.spread({"a.json": group["a.json"]})["std"] == 0.0


def test_a_group_refuses_what_is_not_one_config_over_seeds(tmp_path):
  _write(tmp_path, "a.json", 0, [0.9])
  _write(tmp_path, "b.json", 0, [0.9])
  _write(tmp_path, "other.json", 1, [0.9], config_name="d")
  with pytest.raises(FileNotFoundError, match="moved.json"):
    seeds.load_group(["a.json", "moved.json"], str(tmp_path))
  with pytest.raises(ValueError, match="seed twice"):
    seeds.load_group(["a.json", "b.json"], str(tmp_path))
  with pytest.raises(ValueError, match="several configs"):
    seeds.load_group(["a.json", "other.json"], str(tmp_path))


def test_settings_that_differ_besides_the_seed_are_named(tmp_path):
  _write(tmp_path, "a.json", 0, [0.9], t_free=40, rule={"beta": 0.5})
  _write(tmp_path, "b.json", 1, [0.9], t_free=40, rule={"beta": 0.2})
  assert seeds.config_differences(seeds.load_group(["*.json"], str(tmp_path))) == ["rule.beta"]


def test_report_and_figure(tmp_path):
  for seed, final in enumerate((0.95, 0.96)):
    _write(tmp_path, f"s{seed}.json", seed, [0.9, final])
  _write(tmp_path, "one.json", 0, [0.8, 0.85], config_name="e")
  config = ml_collections.ConfigDict({"panels": (
      ml_collections.ConfigDict({"title": "two", "runs": ("s*.json",),
                                 "references": (("anchor", 0.97), ("target", 0.98))}),
      ml_collections.ConfigDict({"title": "one", "runs": ("one.json",), "references": ()}))})
  report = seeds.report(config, str(tmp_path))
  assert [p["spread"]["n"] for p in report["panels"]] == [2, 1]
  assert "95.50 +- 0.71 % over seeds [0, 1]" in seeds.line(report["panels"][0])
  assert "no spread" in seeds.line(report["panels"][1])
  fig = plots.seed_panels(report)
  first, second = fig.axes[:2]
  assert len(first.lines) == 4 and len(second.lines) == 1  # Two seeds and two references.
  np.testing.assert_allclose(first.lines[2].get_ydata(), [97.0, 97.0])
  assert "one seed" in second.get_title()
  assert open(plots.save(fig, str(tmp_path / "f.png")), "rb").read(4) == b"\x89PNG"


def test_the_committed_headlines_are_those_of_the_committed_runs(tmp_path):
  """results/issue10_seeds.json is what launch.curves computes now from results/: not stale."""
  out = tmp_path / "report.json"
  result = subprocess.run([sys.executable, "-m", "launch.curves", "--config", "configs/curves.py",
                           "--output", str(out)], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(out) as f, open(os.path.join(REPO_ROOT, "results", "issue10_seeds.json")) as g:
    assert json.load(f) == json.load(g), "rerun launch.curves (configs/curves.py's docstring)"
