"""The launcher end to end: ``python -m launch.train`` in a subprocess, as a user runs it."""

import json
import os
import re
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
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


BAD_COMMANDS = [
    (["--config", "configs/no_such.py", "--workdir", "{tmp}/a"], 2,
     "the config file could not be loaded ([Errno 2] No such file"),
    (["--config", "{tmp}/broken.py", "--workdir", "{tmp}/a"], 2, "SyntaxError"),
    (["--config", "configs/mnist_rate_ep.py:quick", "--workdir", "{tmp}/a", "--config.zzz=1"], 2,
     "unknown config field 'zzz' (--config.zzz=1)"),
    (["--config", "configs/mnist_rate_ep.py:quick", "--workdir", "{tmp}/a",
      "--config.learning_rates=(inf, 5e-4)"], 1, "must be a tuple of numbers"),
    (["--config", "configs/mnist_rate_ep.py:quick", "--workdir", "{tmp}/a", "--config.seed=-1"], 1,
     "config.seed = -1: must be a non-negative integer (any seed)"),
    (["--config", "configs/mnist_rate_ep.py:quick", "--workdir", "{tmp}/file"], 1, "is a file"),
    (["--config", "configs/mnist_rate_ep.py:quick", "--workdir="], 1, "--workdir is empty"),
    (["--config", "configs/mnist_rate_ep.py:quick", "--workdir", "{tmp}/a",
      "--config.dataset=mnits", "--config.download=False"], 1, "DatasetNotFoundError"),
]


@pytest.mark.slow
@pytest.mark.parametrize("args,code,message", BAD_COMMANDS,
                         ids=["missing_file", "broken_file", "unknown_field", "inf_rate",
                              "negative_seed", "workdir_file", "workdir_empty", "dataset_typo"])
def test_a_refused_command_ends_in_one_line(mnist_data_dir, tmp_path, args, code, message):
  (tmp_path / "broken.py").write_text("def get_config(:\n")
  (tmp_path / "file").write_text("")
  args = [a.replace("{tmp}", str(tmp_path)) for a in args]
  env = dict(os.environ, TFDS_DATA_DIR=mnist_data_dir)
  result = subprocess.run([sys.executable, "-m", "launch.train", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == code, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  errors = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
  assert len(errors) == 1 and message in errors[0], result.stderr[-3000:]
  # Nothing was written that would refuse the corrected command.
  assert not os.path.exists(os.path.join(tmp_path, "a", "config.json"))
