"""The accuracy-energy frontier (eqspike_jax/analysis/frontier.py, launch/frontier.py)."""

import json

import ml_collections
import pytest

from eqspike_jax import config_lib
from eqspike_jax import train
from eqspike_jax.analysis import energy_report
from eqspike_jax.analysis import frontier


def test_overrides_are_parsed_as_literals_or_strings():
  assert frontier.parse_override("t_free=30") == ("t_free", 30)
  assert frontier.parse_override("eqspike.gamma = 0.3") == ("eqspike.gamma", 0.3)
  assert frontier.parse_override("eqspike.input_mode=current") == ("eqspike.input_mode", "current")
  assert frontier.parse_override("layer_sizes=(784, 10)") == ("layer_sizes", (784, 10))
  with pytest.raises(ValueError, match="FIELD=VALUE"):
    frontier.parse_override("t_free")


def test_overrides_change_a_copy_and_refuse_unknown_fields():
  base = config_lib.base_config("eqspike")
  changed = frontier.apply_overrides(base, ["t_free=45", "eqspike.gamma=1", "beta=1"])
  assert (changed.t_free, changed.eqspike.gamma, changed.beta) == (45, 1.0, 1.0)
  assert isinstance(changed.beta, float) and base.t_free != 45
  with pytest.raises(ValueError, match="no field 't_fre'"):
    frontier.apply_overrides(base, ["t_fre=30"])
  with pytest.raises(ValueError, match="no section 'eqspik'"):
    frontier.apply_overrides(base, ["eqspik.gamma=0.3"])


def test_a_point_with_an_invalid_value_is_refused_before_any_training():
  c = config_lib.from_file("configs/frontier.py", "quick")
  c.points = (("fine", ()), ("bad", ("eqspike.gamma=2.0",)))
  with pytest.raises(ValueError, match="eqspike.gamma"):
    frontier.sweep(c, "/nonexistent", train_fn=None)


def _row(name, accuracy, inference, training):
  return {"name": name, "final_test_accuracy": accuracy,
          "energy_uj": {"loihi": {"inference": inference, "training": training}}}


def test_pareto_front_and_target_by_hand():
  rows = [_row("a", 0.98, 80.0, 400.0), _row("b", 0.97, 5.0, 30.0), _row("c", 0.96, 6.0, 20.0),
          _row("d", 0.98, 9.0, 90.0), _row("e", 0.95, 5.0, 30.0)]
  # a is beaten by d (same accuracy, less energy); e by b (same energy, more accurate); c is
  # beaten by b for inference but is the cheapest to train.
  assert frontier.pareto(rows, "loihi", "inference") == ["b", "d"]
  assert frontier.pareto(rows, "loihi", "training") == ["c", "b", "d"]
  target = ml_collections.ConfigDict({"chip": "loihi", "accuracy": 0.976, "inference_uj": 10.0,
                                      "training_uj": 100.0})
  assert frontier.target_check(rows, target)["met_by"] == ["d"]


@pytest.mark.slow
def test_quick_sweep_trains_prices_and_resumes(mnist_data_dir, tmp_path, monkeypatch):
  """configs/frontier.py:quick: two points (spike trains, current) on 500 images, 10 steps.

  The graded input costs one event per nonzero pixel instead of a train over every step, so
  the current point's inference is measured at about 2.2 uJ on Loihi against 12.3 uJ (seeds
  0-2); every figure of a row is its workdir's, and a second sweep trains nothing.
  """
  monkeypatch.setenv("TFDS_DATA_DIR", mnist_data_dir)
  c = config_lib.from_file("configs/frontier.py", "quick")
  report = frontier.sweep(c, str(tmp_path), train.train_and_evaluate, log=lambda line: None)
  rows = {r["name"]: r for r in report["points"]}
  assert sorted(rows) == ["current", "spikes"]
  for name, row in rows.items():
    summary = json.loads((tmp_path / name / "summary.json").read_text())
    assert row["test_accuracy_per_epoch"] == summary["test_accuracy_per_epoch"]
    assert row["network"]["t_free"] == 10 and row["command"].startswith("python -m launch.train")
    assert f"--config.name={summary['config_name']}" in row["command"]
  spikes, current = rows["spikes"]["energy_uj"]["loihi"], rows["current"]["energy_uj"]["loihi"]
  assert current["inference"] < 0.5 * spikes["inference"]
  assert rows["current"]["counts"]["training"]["nudged/spikes/layer0"] == 0.0
  cfg = config_lib.from_file(c.energy_config)
  cfg.num_examples = c.energy_examples
  again = energy_report.report_for_workdir(str(tmp_path / "current"), cfg)
  assert again["neuromorphic"]["loihi"]["inference"]["total_pj"] == pytest.approx(
      current["inference"] * 1e6)
  assert set(report["pareto"]["loihi"]["inference"]) <= set(rows)

  def no_training(*args):
    raise AssertionError(f"a finished point was trained again: {args[1]}")
  resumed = frontier.sweep(c, str(tmp_path), no_training, log=lambda line: None)
  assert [r["final_test_accuracy"] for r in resumed["points"]] == [
      r["final_test_accuracy"] for r in report["points"]]
  frontier.figure(report)  # Draws from the report alone.
