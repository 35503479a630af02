"""The alignment sweep's plumbing: which points it measures, and that each point is measured at
its own settings (the references are cached per batch and beta, never across betas)."""

import numpy as np
import pytest

from eqspike_jax import config_lib
from eqspike_jax.analysis import alignment_report

_ALIGNMENT = "configs/alignment.py"


def _settings(rows):
  return [(r["pairing"], r["swept"], r["t_nudge"], r["beta"], r["batch_size"]) for r in rows]


def test_one_at_a_time_points_vary_one_setting_each():
  c = config_lib.from_file(_ALIGNMENT, "quick")
  base = config_lib.from_file(c.base_config)
  pts = list(alignment_report.points(c, base))
  shipped = {"t_nudge": base.t_nudge, "beta": base.beta, "gamma": base.eqspike.gamma,
             "batch_size": c.batch_size}
  for p in pts:
    changed = [f for f in alignment_report.SWEPT if p[f] != shipped[f]]
    assert changed == ([] if p["swept"] == "shipped" else [p["swept"]]), p
  assert sum(p["swept"] == "shipped" for p in pts) == len(c.pairings)


def test_grid_crosses_the_named_sweeps():
  c = config_lib.from_file(_ALIGNMENT, "conv_grid")
  base = config_lib.from_file(c.base_config)
  pts = list(alignment_report.points(c, base))
  assert len(pts) == len(c.pairings) * len(c.sweeps.beta) * len(c.sweeps.t_nudge)
  assert {(p["beta"], p["t_nudge"]) for p in pts} == {
      (b, t) for b in c.sweeps.beta for t in c.sweeps.t_nudge}
  assert all(p["swept"] == "grid" and p["batch_size"] == c.batch_size for p in pts)


def test_grid_of_an_unknown_setting_is_refused():
  c = config_lib.from_file(_ALIGNMENT, "quick")
  c.grid = ("beta", "tau")
  with pytest.raises(ValueError, match="tau"):
    list(alignment_report.points(c, config_lib.from_file(c.base_config)))


def test_grid_sweep_measures_each_point_at_its_own_beta():
  """On real test images, a tiny random network. Rate EP at beta 0.05 tracks the true gradient
  (cosine > 0.99 in every layer; alignment_test shows the limit by hand); at beta 1.0 it cannot be
  the same vector, so a reference cached across betas would fail the second assertion."""
  c = config_lib.from_file(_ALIGNMENT, "quick")
  c.pairings = ("state",)
  c.grid = ("beta", "t_nudge")
  c.sweeps.beta = (0.05, 1.0)
  c.sweeps.t_nudge = (10,)
  report = alignment_report.sweep(c, log=lambda line: None)
  rows = report["points"]
  assert _settings(rows) == [("state", "grid", 10, 0.05, 32), ("state", "grid", 10, 1.0, 32)]
  for r in rows:
    for key in ("spike_vs_twin", "twin_vs_true", "rate_ep_vs_true"):
      assert len(r[key]) == 3 and np.all(np.abs(r[key]) <= 1 + 1e-6), (key, r[key])
  small, large = (np.array(r["rate_ep_vs_true"]) for r in rows)
  assert np.all(small > 0.99), small
  assert np.max(np.abs(small - large)) > 1e-3, (small, large)
