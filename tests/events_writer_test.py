"""The TensorFlow-free event writer, read back by TensorBoard's own reader."""

import sys

import numpy as np
from tensorboard.backend.event_processing import event_accumulator

from eqspike_jax import events_writer


def _read(log_dir):
  events = event_accumulator.EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
  events.Reload()
  return events


def test_scalars_and_text_read_back_while_the_writer_is_open(tmp_path):
  writer = events_writer.SummaryWriter(str(tmp_path / "tb"))
  writer.text("config", "seed 3\n\n```\nlr: 0.1\n```", 0)
  for step, value in ((10, 0.25), (20, 0.5), (30, 0.75)):
    writer.scalar("eval/accuracy", value, step)
  events = _read(tmp_path / "tb")  # Not closed: what a TensorBoard watching a run sees.
  got = events.Scalars("eval/accuracy")
  assert [e.step for e in got] == [10, 20, 30]
  np.testing.assert_allclose([e.value for e in got], [0.25, 0.5, 0.75])
  (text,) = events.Tensors("config")
  assert text.tensor_proto.string_val[0].decode() == "seed 3\n\n```\nlr: 0.1\n```"
  assert events.SummaryMetadata("config").plugin_data.plugin_name == "text"
  writer.close()


def test_two_writers_of_one_process_write_two_files(tmp_path):
  for value in (1.0, 2.0):
    writer = events_writer.SummaryWriter(str(tmp_path))
    writer.scalar("x", value, int(value))
    writer.close()
  assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2
  assert [e.value for e in _read(tmp_path).Scalars("x")] == [1.0, 2.0]


def test_writing_events_does_not_import_tensorflow():
  import subprocess  # pylint: disable=g-import-not-at-top
  code = ("import sys, tempfile; from eqspike_jax import events_writer, train; "
          "w = events_writer.SummaryWriter(tempfile.mkdtemp()); w.scalar('x', 1.0, 0); w.close(); "
          "print('tensorflow' in sys.modules)")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert done.stdout.strip() == "False", done.stdout + done.stderr[-2000:]
