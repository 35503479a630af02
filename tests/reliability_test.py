"""Bad input refused up front, damaged or concurrent runs survived, silent collapses stopped.

Fault injection where it is a fault: truncated and flipped checkpoint files, a held lock, a
signal sent to the training process, a write that fails with ENOSPC.
"""

import errno
import json
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqspike_jax import checkpoints
from eqspike_jax import config_lib
from eqspike_jax import monitor
from eqspike_jax import train
from eqspike_jax import workdir as workdir_lib

import train_test  # pylint: disable=g-bad-import-order  (the tiny config and its helpers)

tiny_config = train_test.tiny_config


@pytest.fixture(name="small_mnist")
def small_mnist_fixture(monkeypatch, mnist_data_dir):
  monkeypatch.setenv("TFDS_DATA_DIR", mnist_data_dir)


# ================================================================================================
# Refused before any work, and the workdir left usable.
# ================================================================================================


@pytest.mark.slow
def test_an_output_layer_of_the_wrong_size_is_refused_and_leaves_the_workdir_usable(
    small_mnist, tmp_path):
  del small_mnist
  workdir = str(tmp_path)
  with pytest.raises(ValueError, match=r"layer_sizes\[-1\] = 5 but mnist has 10 classes"):
    train.train_and_evaluate(tiny_config(layer_sizes=(784, 24, 5), learning_rates=(1e-2, 5e-3)),
                             workdir)
  assert not os.path.exists(os.path.join(workdir, "config.json"))
  with pytest.raises(ValueError, match="28 x 28|pixels"):
    train.train_and_evaluate(tiny_config(layer_sizes=(700, 24, 10)), workdir)
  # The corrected command is not refused as "a different config".
  summary = train.train_and_evaluate(tiny_config(num_epochs=1), workdir)
  assert len(summary["test_accuracy_per_epoch"]) == 1


@pytest.mark.slow
def test_a_batch_larger_than_the_training_set_is_refused(small_mnist, tmp_path):
  del small_mnist
  with pytest.raises(ValueError, match=r"train_subset = 600: is smaller than one batch"):
    train.train_and_evaluate(tiny_config(batch_size=700, train_subset=600), str(tmp_path))
  # The whole set, whose size only the data knows: refused once it is loaded, before training.
  with pytest.raises(ValueError, match=r"batch_size = 60001 is larger than the 60000 training"):
    train.train_and_evaluate(tiny_config(batch_size=60001, train_subset=0), str(tmp_path))
  assert not os.path.exists(os.path.join(tmp_path, "config.json"))


def test_a_workdir_that_is_a_file_or_empty_is_refused(tmp_path):
  path = tmp_path / "file"
  path.write_text("")
  for bad, message in ((str(path), "is a file"), ("", "--workdir is empty")):
    with pytest.raises(ValueError, match=message):
      train.train_and_evaluate(tiny_config(), bad)


# ================================================================================================
# Damaged checkpoints and configs.
# ================================================================================================


def _two_checkpoints(workdir):
  """Checkpoints at steps 1 and 2 of a small state, as the trainer saves them."""
  manager = checkpoints.manager_for(workdir)
  states = {}
  for step in (1, 2):
    state = train.TrainState(step=jnp.asarray(step, jnp.int32),
                             params=(jnp.full((64, 32), float(step)),), opt_state=())
    checkpoints.save(manager, workdir, state, [{"epoch": step}], {"config": {}, "epoch": None})
    states[step] = state
  return manager, states


def _largest_file(step_dir):
  files = [os.path.join(d, n) for d, _, names in os.walk(step_dir) for n in names]
  return max(files, key=os.path.getsize)


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, damage, caplog):
  workdir = str(tmp_path)
  manager, states = _two_checkpoints(workdir)
  step_dir = os.path.join(checkpoints.checkpoint_dir(workdir), "2")
  victim = _largest_file(step_dir)
  if damage == "truncate":
    with open(victim, "r+b") as f:
      f.truncate(os.path.getsize(victim) // 2)
  elif damage == "flip":
    with open(victim, "r+b") as f:
      data = bytearray(f.read())
      data[len(data) // 2] ^= 0xFF
      f.seek(0)
      f.write(data)
  else:
    os.remove(victim)
  assert checkpoints.verify(workdir, 2) is not None
  template = jax.tree.map(jnp.zeros_like, states[2])
  with caplog.at_level("WARNING"):
    state, history, _ = checkpoints.restore(checkpoints.manager_for(workdir), workdir, template)
  assert int(state.step) == 1 and history == [{"epoch": 1}]
  np.testing.assert_array_equal(state.params[0], states[1].params[0])
  assert "step 2" in caplog.text and "resuming from step 1" in caplog.text
  assert checkpoints.manager_for(workdir).all_steps() == [1]  # The damaged one is gone.
  del manager


def test_no_trustworthy_checkpoint_is_an_error_not_a_fresh_start(tmp_path):
  workdir = str(tmp_path)
  _, states = _two_checkpoints(workdir)
  with open(os.path.join(workdir, checkpoints.CHECKSUM_FILE), "w") as f:
    json.dump({"1": "0" * 64, "2": "0" * 64}, f)
  with pytest.raises(checkpoints.CheckpointError, match="no checkpoint .* can be trusted"):
    checkpoints.restore(checkpoints.manager_for(workdir), workdir, states[2])


def test_a_full_disk_is_one_line(tmp_path, monkeypatch):
  workdir = str(tmp_path)
  manager = checkpoints.manager_for(workdir)

  def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(manager, "save", no_space)
  state = train.TrainState(step=jnp.asarray(3), params=(jnp.ones((250, 1000)),), opt_state=())
  with pytest.raises(checkpoints.CheckpointError) as info:
    checkpoints.save(manager, workdir, state, [], {})
  message = str(info.value)
  assert "\n" not in message
  assert "step 3" in message and "no space left" in message and "1.0 MB" in message


def test_a_checkpoint_refuses_another_config_even_without_config_json(small_mnist, tmp_path,
                                                                      monkeypatch):
  del small_mnist
  workdir = str(tmp_path)
  with monkeypatch.context() as mp:
    train_test.interrupt_after_calls(mp, 2)  # Killed at step 8, after the checkpoint of step 4.
    with pytest.raises(train_test.Interrupted):
      train.train_and_evaluate(tiny_config(checkpoint_every_steps=4), workdir)
  os.remove(os.path.join(workdir, "config.json"))
  with pytest.raises(ValueError, match=r"checkpoint .* trained with a different config.*'beta'"):
    train.train_and_evaluate(tiny_config(checkpoint_every_steps=4, beta=0.25), workdir)


def test_a_damaged_config_json_names_the_file(tmp_path):
  (tmp_path / "config.json").write_text('{"name": "tiny", ')
  with pytest.raises(ValueError, match=r"config.json is damaged"):
    workdir_lib.check_same_run(tiny_config(), str(tmp_path))
  with pytest.raises(ValueError, match=r"config.json is damaged"):
    workdir_lib.load_config(str(tmp_path))


def test_reading_a_run_creates_nothing(tmp_path):
  (tmp_path / "config.json").write_text(tiny_config().to_json())
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    workdir_lib.summarize(str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == ["config.json"]


# ================================================================================================
# Concurrent runs and signals.
# ================================================================================================


@pytest.mark.slow
def test_a_held_workdir_is_refused_naming_the_holder(small_mnist, tmp_path):
  del small_mnist
  workdir = str(tmp_path)
  with workdir_lib.lock(workdir):
    with pytest.raises(workdir_lib.WorkdirBusy, match=rf"pid {os.getpid()} on "):
      train.train_and_evaluate(tiny_config(), workdir)
  summary = train.train_and_evaluate(tiny_config(num_epochs=1), workdir)  # Released.
  assert summary["test_accuracy_per_epoch"]


@pytest.mark.slow
def test_sigterm_checkpoints_the_current_step_and_resumes_exactly(small_mnist, tmp_path,
                                                                  monkeypatch):
  """SIGTERM after the second call (step 8 of 12, mid-epoch): a checkpoint of step 8, and the
  resumed run equals the uninterrupted one, its first epoch's training metrics included."""
  del small_mnist
  reference = train.train_and_evaluate(tiny_config(), str(tmp_path / "reference"))
  workdir = str(tmp_path / "stopped")
  real_make_train_chunk = train.make_train_chunk

  def make_train_chunk(*args):
    chunk = real_make_train_chunk(*args)
    calls = []

    def signalled(*chunk_args):
      out = chunk(*chunk_args)
      calls.append(1)
      if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGTERM)
      return out

    return signalled

  with monkeypatch.context() as mp:
    mp.setattr(train, "make_train_chunk", make_train_chunk)
    with pytest.raises(workdir_lib.Stopped, match="SIGTERM at step 8.*same command"):
      train.train_and_evaluate(tiny_config(), workdir)
  assert checkpoints.manager_for(workdir).latest_step() == 8
  resumed = train.train_and_evaluate(tiny_config(), workdir)
  assert resumed["test_accuracy_per_epoch"] == reference["test_accuracy_per_epoch"]
  for name in ("train_accuracy", "train_loss", "train_grad_norm/layer0"):
    np.testing.assert_allclose(resumed["epochs"][0][name], reference["epochs"][0][name],
                               rtol=1e-6, err_msg=name)
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # The handler was put back.


# ================================================================================================
# Collapses that are not NaN.
# ================================================================================================


def _record(**overrides):
  record = {"epoch": 1, "step": 60, "test_accuracy": 0.6, "train_grad_norm/layer0": 0.1,
            "train_grad_norm/layer1": 0.2, "train_activity/layer1": 0.3,
            "train_activity/layer2": 0.2}
  record.update(overrides)
  return record


@pytest.mark.parametrize("overrides,message", [
    (dict(test_accuracy=0.11), "test accuracy 0.1100 is at chance"),
    ({"train_grad_norm/layer0": 0.0, "train_grad_norm/layer1": 0.0}, "every update was exactly"),
    ({"train_activity/layer1": 0.0}, "layer1 is silent"),
    ({"train_activity/layer2": 1.0}, "layer2 is saturated"),
])
def test_check_health_names_the_metric_step_and_cause(overrides, message):
  monitor.check_health(_record(), num_classes=10, num_test=1000, last_checkpoint=12)
  with pytest.raises(monitor.TrainingCollapsed, match=message) as info:
    monitor.check_health(_record(**overrides), num_classes=10, num_test=1000, last_checkpoint=12)
  assert "after epoch 1 (step 60)" in str(info.value)
  assert "checkpoint, at step 12" in str(info.value)


def test_a_few_steps_at_chance_are_not_a_collapse():
  monitor.check_health(_record(step=monitor.MIN_STEPS_FOR_CHANCE - 1, test_accuracy=0.1),
                       num_classes=10, num_test=1000, last_checkpoint=None)


def test_chance_band_is_four_binomial_deviations():
  np.testing.assert_allclose(monitor.chance_band(10, 1000), 0.1 + 4 * np.sqrt(0.09 / 1000))


@pytest.mark.slow
@pytest.mark.parametrize("overrides,message", [
    (dict(learning_rates=(1.0, 1.0)), "Training collapsed after epoch 1"),
    (dict(beta=1e-8), "Training collapsed after epoch 1"),
], ids=["learning_rate_1", "beta_1e-8"])
def test_a_run_that_learns_nothing_stops(small_mnist, tmp_path, overrides, message):
  del small_mnist
  # 60 steps in the epoch: past the few steps after which chance accuracy is a collapse.
  config = tiny_config(nudging="one_sided", train_subset=3000, **overrides)
  with pytest.raises(monitor.TrainingCollapsed, match=message):
    train.train_and_evaluate(config, str(tmp_path))
  config.stop_on_collapse = False  # The check can be switched off (and the run resumes).
  train.train_and_evaluate(config, str(tmp_path))


def test_divergence_advice_points_to_a_checkpoint_that_exists():
  metrics = {"loss": np.array([0.5, np.nan])}
  with pytest.raises(FloatingPointError, match="no checkpoint was saved yet"):
    monitor.check_finite(metrics, first_step=0, last_checkpoint=None)
  with pytest.raises(FloatingPointError, match="last checkpoint, at step 12, precedes"):
    monitor.check_finite(metrics, first_step=20, last_checkpoint=12)


def test_a_config_saved_before_later_fields_reads_and_resumes_as_itself(tmp_path):
  """config.json of an older run lacks fields added since (each with a default that keeps the
  old behaviour): it loads with those defaults and compares equal to today's config, while a
  field that does differ is still refused."""
  config = config_lib.base_config("eqspike")
  saved = json.loads(config.to_json_best_effort())
  for field in ("synapse_bits", "synapse_range", "synapse_rounding"):
    del saved[field]
  for field in ("window", "state_bits", "stream_free_phase"):
    del saved["eqspike"][field]
  (tmp_path / workdir_lib.CONFIG_FILE).write_text(json.dumps(saved))
  loaded = workdir_lib.load_config(str(tmp_path))
  assert loaded.synapse_bits == 0 and loaded.eqspike.window == 0
  assert not loaded.eqspike.stream_free_phase
  now = json.loads(config.to_json_best_effort())
  assert workdir_lib.config_differences(saved, now) == {}
  now["eqspike"]["pairing"] = "state"
  assert set(workdir_lib.config_differences(saved, now)) == {"eqspike"}
