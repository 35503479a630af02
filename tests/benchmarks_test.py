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


@pytest.mark.slow
@pytest.mark.parametrize("config", ["mnist_eqspike", "mnist_rate_ep"])
def test_throughput_counts_what_it_traces(config, tmp_path):
  r, stdout = _run("benchmarks.throughput",
                   ["--config", f"configs/{config}.py", *SMALL, "--steps", "2", "--repeats", "1",
                    "--num_examples", "200", "--square_size", "64", "--matmul_min_time",
                    "0.005", "--xla_unrolled=false"], tmp_path)
  assert r["unit_counts"] == [784, 16, 10]
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


# Each benchmark module defines its own absl flags, so they are imported in separate processes.
_CONV_BENCH = """
import json, sys
from eqspike_jax import flops, layers
conv = layers.Conv((8, 8, 1), 2, 3, 2)
arch = (conv, layers.Dense(conv.n_out, 3))
if sys.argv[1] == "throughput":
  from benchmarks import throughput
  mms = [flops.input_drive(arch, "x", 2)] + flops.outer_matmuls(arch, "rule", 4, 1, 1)
  print(json.dumps(throughput.bench_step_matmuls(mms, repeats=1, min_time=0.001)))
else:
  from benchmarks import conv_forms
  print(json.dumps(conv_forms.bench_conv(conv, 2, 4, 1)))
"""


def _conv_bench(which):
  result = subprocess.run([sys.executable, "-c", _CONV_BENCH, which], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 0, result.stderr[-4000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_convolutions_are_timed_as_convolutions():
  """A step's conv products are benchmarked as the layer's own maps, and every form of
  benchmarks.conv_forms runs (small shapes; the launch path is the dense configs')."""
  r = _conv_bench("throughput")
  assert [s["shape"].startswith("conv") for s in r["shapes"]] == [True, True, False]
  assert r["mix_gflops"] > 0
  row = _conv_bench("conv_forms")["forms"]
  assert set(row) == {"conv_then_pool", "box_then_strided_conv", "strided_patches_dot"}
  assert all(v > 0 for form in row.values() for v in form.values()), row


def test_the_gpu_session_reads_the_entries_prepare_exports():
  """go.sh (run only on the device) parses and asks for the key prepare.py exports under."""
  from benchmarks.gpu_session import prepare  # pylint: disable=g-import-not-at-top
  from eqspike_jax import data  # pylint: disable=g-import-not-at-top
  script = os.path.join(REPO_ROOT, "benchmarks", "gpu_session", "go.sh")
  assert subprocess.run(["bash", "-n", script], capture_output=True).returncode == 0
  with open(script) as f:
    text = f.read()
  assert f"{data.KEY_ENV}={prepare.KEY} " in text
  assert f"{data.CACHE_ENV}=$PWD/{prepare.CACHE} " in text
  assert f"{prepare.WHEELS}/*.whl" in text
