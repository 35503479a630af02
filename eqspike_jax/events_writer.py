"""TensorBoard event files without TensorFlow: scalars and text, as ``tf.summary`` writes them.

flax's ``SummaryWriter`` goes through ``tf.summary``, and importing TensorFlow costs every
training process 4-5 s before its first step. The ``tensorboard`` package has the protocol
buffers and the record framing (its ``EventFileWriter`` would do, but it opens files through
``tf.io.gfile`` whenever TensorFlow is installed, so it imports it).
"""

import itertools
import os
import socket
import time

import numpy as np
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.text import metadata as text_metadata
from tensorboard.summary.writer import record_writer
from tensorboard.util import tensor_util

_FILE_COUNTER = itertools.count()  # Two writers of one process in one second: two files.


class SummaryWriter:
  """Appends to an event file in ``log_dir`` (created); ``scalar``, ``text``, ``flush``, ``close``."""

  def __init__(self, log_dir: str):
    os.makedirs(log_dir, exist_ok=True)
    # TensorBoard reads every file named events.out.tfevents.*; the name is TensorFlow's.
    name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}."
            f"{next(_FILE_COUNTER)}.v2")
    self._writer = record_writer.RecordWriter(open(os.path.join(log_dir, name), "wb"))
    self._add(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

  def _add(self, event: event_pb2.Event) -> None:
    # Flushed at once: runs write a few values a minute, and TensorBoard should show them live.
    self._writer.write(event.SerializeToString())
    self._writer.flush()

  def _write(self, value: summary_pb2.Summary.Value, step: int) -> None:
    self._add(event_pb2.Event(wall_time=time.time(), step=int(step),
                              summary=summary_pb2.Summary(value=[value])))

  def scalar(self, tag: str, value: float, step: int) -> None:
    self._write(summary_pb2.Summary.Value(tag=tag, simple_value=float(value)), step)

  def text(self, tag: str, text: str, step: int) -> None:
    """Markdown, shown by TensorBoard's text plugin."""
    self._write(summary_pb2.Summary.Value(
        tag=tag, metadata=text_metadata.create_summary_metadata(display_name=tag, description=""),
        tensor=tensor_util.make_tensor_proto(np.array(text.encode("utf-8"), dtype=object))), step)

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()
