"""The launcher end to end: ``python -m launch.train`` in a subprocess, as a user runs it."""

import json
import os
import re
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_launcher_writes_summary(mnist_data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  args = ["--config", "configs/mnist_rate_ep.py:quick", "--workdir", workdir,
          "--config.num_epochs=1"]  # Overriding a field of the locked config works.
  env = dict(os.environ, TFDS_DATA_DIR=mnist_data_dir)
  result = subprocess.run([sys.executable, "-m", "launch.train", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-5000:]

  with open(os.path.join(workdir, "summary.json")) as f:
    summary = json.load(f)
  for field in ("config_name", "command", "git_sha", "test_accuracy_per_epoch", "wall_time_s",
                "samples_per_s"):
    assert field in summary, field
  assert summary["config_name"] == "mnist_rate_ep"
  assert summary["command"] == " ".join(["python -m launch.train", *args])
  if os.path.isdir(os.path.join(REPO_ROOT, ".git")):
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", summary["git_sha"]), summary["git_sha"]
  assert summary["config"]["num_epochs"] == 1
  assert summary["config"]["train_subset"] == 2000
  assert len(summary["test_accuracy_per_epoch"]) == 1
  assert summary["test_accuracy_per_epoch"][0] >= 0.7  # Chance is 0.1; measured 0.862.
  assert summary["wall_time_s"] > 0
  assert summary["samples_per_s"] > 0
  assert os.path.exists(os.path.join(workdir, "config.json"))
