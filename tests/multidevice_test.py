"""Data parallelism: N fake CPU devices give what one device gives for the same global batch."""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_n_devices_equal_one_device(tmp_path, mnist_data_dir):
  # The device count is fixed when JAX starts, so the comparison runs in a fresh process.
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             TFDS_DATA_DIR=mnist_data_dir)
  here = os.path.dirname(os.path.abspath(__file__))
  done = subprocess.run([sys.executable, os.path.join(here, "multidevice_worker.py"),
                         str(tmp_path)], env=env, capture_output=True, text=True, timeout=600,
                        cwd=os.path.dirname(here), check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  result = json.loads(done.stdout.strip().splitlines()[-1])
  assert result["num_devices"] == 4
  steps = result["steps"]
  for name in ("rate_ep", "rate_ep/symmetric", "rate_ep/online", "rate_ep/random_sign", "eqspike",
               "eqspike/online", "eqspike/random_sign"):
    assert steps[f"{name}/moved"] > 1e-3, steps  # The steps changed the parameters...
    # ...and four devices changed them as one device did, to float rounding.
    assert steps[f"{name}/4"] < 1e-5, (name, steps)
  quick = result["quick"]
  assert quick["accuracy_1"] == quick["accuracy_2"], quick
  assert quick["params_diff"] < 1e-5, quick
  # The summary names the devices the run trained on (two of the four), not the machine's.
  assert len(quick["devices_2"]) == 2, quick
