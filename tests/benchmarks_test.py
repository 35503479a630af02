"""The benchmarks end to end: ``python -m benchmarks.*`` in a subprocess, on small networks.

They must run on the current API, report the analytic FLOP count equal to the traced one, and
compare speeds only with what the same run timed.
"""

import json
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Small networks and phases: the code paths of the real configs in seconds.
SMALL = ["--config.layer_sizes=(784, 16, 10)", "--config.t_free=8", "--config.t_nudge=4"]


def _run(module, args, tmp_path):
  out = tmp_path / "result.json"
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  result = subprocess.run([sys.executable, "-m", module, *args, "--out", str(out)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-4000:]
  with open(out) as f:
    return json.load(f), result.stdout


# Two small convolutions, 784-(2@12x12)-(4@4x4)-10, with the conv config's rule.
SMALL_CONV = ["--config.conv_layers=((2, 5, 2), (4, 5, 2))", "--config.t_free=8",
              "--config.t_nudge=4"]


@pytest.mark.slow
@pytest.mark.parametrize("config,small,sizes", [
    ("mnist_eqspike", SMALL, [784, 16, 10]), ("mnist_rate_ep", SMALL, [784, 16, 10]),
    ("mnist_conv_eqspike", SMALL_CONV, [784, 288, 64, 10])])
def test_throughput_counts_what_it_traces(config, small, sizes, tmp_path):
  r, stdout = _run("benchmarks.throughput",
                   ["--config", f"configs/{config}.py", *small, "--steps", "2", "--repeats", "1",
                    "--num_examples", "200", "--square_size", "64", "--matmul_min_time",
                    "0.005", "--xla_unrolled=false"], tmp_path)
  assert r["unit_counts"] == sizes
  assert r["traced_flops_per_example"] == r["flops_per_example"]["total"]
  assert r["metrics_finite"] and r["samples_per_s"]["median"] > 0
  # No speed measured elsewhere: every rate in the report was timed in this run.
  assert not [k for k in r if "pytorch" in k or "reference" in k], sorted(r)
  assert "PyTorch" not in stdout


@pytest.mark.slow
def test_devices_times_one_against_two(tmp_path):
  r, _ = _run("benchmarks.devices",
              ["--config", "configs/mnist_rate_ep.py", *SMALL, "--num_devices", "2",
               "--rounds", "2", "--steps", "2"], tmp_path)
  assert sorted(r["samples_per_s"]) == ["1", "2"]
  assert len(r["devices"]) == 2
  assert r["ratio_median"] == pytest.approx(r["samples_per_s"]["2"]["median"]
                                            / r["samples_per_s"]["1"]["median"])


@pytest.mark.slow
def test_conv_forms_are_timed_and_count_the_pooled_products(tmp_path):
  r, _ = _run("benchmarks.conv_forms", ["--batch", "2", "--rule_rows", "4", "--repeats", "1"],
              tmp_path)
  assert [c["in_shape"] for c in r["convs"]] == [[28, 28, 1], [12, 12, 32]]
  for conv in r["convs"]:
    assert set(conv["forms"]) == {"conv_then_pool", "box_then_strided_conv",
                                  "strided_patches_dot"}
    for row in conv["forms"].values():
      assert all(v > 0 for v in row.values()), row
