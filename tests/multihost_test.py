"""Multi-process (multi-host) training: two processes joined by ``jax.distributed.initialize``.

Each process runs ``python -m launch.train`` with one CPU device, as two hosts would; together
they must train exactly what one process trains on the same global batches.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from eqspike_jax import registry
from eqspike_jax import workdir as workdir_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The trainer is the same for every model; rate EP compiles fastest.
ARGS = ["--config", "configs/mnist_rate_ep.py:quick", "--config.train_subset=300",
        "--config.eval_subset=200", "--config.num_epochs=1", "--config.steps_per_call=3",
        "--config.optimizer=sgd", "--config.learning_rates=(0.05, 0.05)"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _launch(workdir, extra=(), env=None):
  return subprocess.Popen([sys.executable, "-m", "launch.train", *ARGS, "--workdir", workdir,
                           *extra], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_two_processes_train_as_one(tmp_path, mnist_data_dir):
  env = dict(os.environ, TFDS_DATA_DIR=mnist_data_dir, XLA_FLAGS="")
  port = _free_port()
  two = str(tmp_path / "two")
  procs = [_launch(two, ["--coordinator_address", f"localhost:{port}", "--num_processes", "2",
                         "--process_id", str(i)], env) for i in range(2)]
  logs = [p.communicate(timeout=600)[0] for p in procs]
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-4000:]
  assert "Process 1 of 2" in logs[1], logs[1][-2000:]
  one = str(tmp_path / "one")
  single = _launch(one, env=env)
  log = single.communicate(timeout=600)[0]
  assert single.returncode == 0, log[-4000:]

  with open(os.path.join(two, "summary.json")) as f:
    summary_two = json.load(f)
  with open(os.path.join(one, "summary.json")) as f:
    summary_one = json.load(f)
  assert len(summary_two["devices"]) == 2, summary_two["devices"]
  assert summary_two["test_accuracy_per_epoch"] == summary_one["test_accuracy_per_epoch"]
  _, params_two, step_two = workdir_lib.load_trained(two)
  config, params_one, step_one = workdir_lib.load_trained(one)
  initial = registry.init_params(config)
  assert step_two == step_one == 6
  def max_diff(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(jax.tree.leaves(a),
                                                               jax.tree.leaves(b)))

  assert max_diff(params_one, initial) > 1e-3  # Training moved the weights...
  assert max_diff(params_two, params_one) < 1e-5  # ...and two processes moved them alike.
