"""benchmarks/gpu_energy.py on CPU with a fake power source, and launch.energy reading its JSON."""

import json
import time

import numpy as np
import pytest

from benchmarks import gpu_energy
from eqspike_jax.analysis import energy_report


class FakeBoard:
  """A board drawing ``watts`` (set by the test), read like NVML."""

  def __init__(self, watts):
    self.watts = watts
    self.reads = 0

  def __call__(self):
    self.reads += 1
    return self.watts


def test_energy_per_example_by_hand():
  loaded = gpu_energy.Measurement(examples=500, seconds=2.0, mean_power_w=150.0, num_samples=41,
                                  sample_hz=20.0)
  e = gpu_energy.energy_per_example(loaded, idle_w=50.0)
  assert e["samples_per_s"] == 250.0
  assert e["total_j_per_example"] == pytest.approx(150.0 / 250.0)
  assert e["dynamic_j_per_example"] == pytest.approx(100.0 / 250.0)


def test_sampler_reads_at_the_requested_rate():
  board = FakeBoard(42.0)
  sampler = gpu_energy.PowerSampler(board, hz=50).start()
  time.sleep(0.5)
  samples = sampler.stop()
  stats = gpu_energy.power_stats(samples)
  assert stats["mean_power_w"] == 42.0
  # 50 Hz asked; a loaded machine delays the thread's wake-ups, never hastens them.
  assert 20 <= stats["sample_hz"] <= 60, stats
  assert np.all(np.diff(samples[:, 0]) > 0)


def test_sampler_refuses_a_slow_rate():
  with pytest.raises(ValueError, match="10 times a second"):
    gpu_energy.PowerSampler(FakeBoard(1.0), hz=5)


def test_loaded_measurement_counts_examples_and_power():
  board = FakeBoard(150.0)
  sampler = gpu_energy.PowerSampler(board, hz=40)
  calls = []
  loaded = gpu_energy.run_loaded(lambda: calls.append(time.sleep(0.01)), 8, 0.5, sampler)
  assert loaded.examples == 8 * len(calls) and loaded.seconds >= 0.5
  assert loaded.mean_power_w == 150.0 and loaded.num_samples >= 8  # 20 at 40 Hz, unloaded.


def test_power_trace_that_changes_gives_its_mean():
  """A board that steps from 100 W to 200 W halfway: the mean of the samples is 150 W."""
  samples = np.stack([np.linspace(0, 1, 20), np.r_[np.full(10, 100.0), np.full(10, 200.0)]], 1)
  assert gpu_energy.power_stats(samples)["mean_power_w"] == 150.0
  with pytest.raises(RuntimeError, match="power samples"):
    gpu_energy.power_stats(samples[:1])


def test_measure_end_to_end_and_launch_energy_reads_it(load_config, tmp_path):
  """The whole script on CPU (a tiny rate-EP network), then the energy report's scenarios."""
  config = load_config("mnist_rate_ep", "quick")
  config.layer_sizes, config.learning_rates = (784, 16, 10), (1e-3, 1e-3)
  board = FakeBoard(60.0)


  original = gpu_energy.run_loaded

  def loaded_at_160(call, n, seconds, sampler):
    board.watts = 160.0
    try:
      return original(call, n, seconds, sampler)
    finally:
      board.watts = 60.0

  gpu_energy.run_loaded = loaded_at_160
  try:
    by_batch = gpu_energy.measure(config, [1, 4], board, seconds=0.3, idle_seconds=0.2, hz=40,
                                  log=lambda _: None)
  finally:
    gpu_energy.run_loaded = original
  for batch in ("1", "4"):
    entry = by_batch[batch]
    assert entry["idle"]["mean_power_w"] == 60.0
    for phase in ("inference", "training"):
      e = entry[phase]
      assert e["mean_power_w"] == 160.0
      assert e["dynamic_j_per_example"] == pytest.approx(100.0 / e["samples_per_s"])
  path = tmp_path / "gpu_energy.json"
  path.write_text(json.dumps({"layer_sizes": [784, 16, 10], "device_kind": "fake",
                              "git_sha": "0" * 40, "batches": by_batch}))
  entries = energy_report.measured_gpu_entries(str(path), (784, 16, 10))
  assert entries["measured/batch4"]["training"]["total_pj"] == pytest.approx(
      by_batch["4"]["training"]["dynamic_j_per_example"] * 1e12)
  with pytest.raises(ValueError, match="same layer sizes"):
    energy_report.measured_gpu_entries(str(path), (784, 512, 10))
  with pytest.raises(FileNotFoundError, match="benchmarks.gpu_energy"):
    energy_report.measured_gpu_entries(str(tmp_path / "missing.json"), (784, 16, 10))
