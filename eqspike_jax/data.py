"""MNIST (or any TFDS image classification set) as in-memory arrays, through tensorflow-datasets.

The whole split is loaded once: MNIST is 220 MB as float32, far less than a step's worth of
host-device copies over an epoch. Batches are index arrays into it; the order of each epoch is a
pure function of ``(seed, epoch)``, which is what lets an interrupted run resume exactly.
"""

import os
from typing import NamedTuple, Optional

import numpy as np

DEFAULT_DATA_DIR = os.path.join("~", "tensorflow_datasets")


class DatasetNotFoundError(FileNotFoundError):
  """The dataset is neither prepared in the data directory nor downloadable."""


class Split(NamedTuple):
  images: np.ndarray  # [N, H*W*C] float32 in [0, 1].
  labels: np.ndarray  # [N] int32.
  num_classes: int = 0  # Of the dataset (0: unknown).


def resolve_data_dir(data_dir: Optional[str]) -> str:
  """The config's ``data_dir`` if set, else ``$TFDS_DATA_DIR``, else TFDS's default."""
  path = data_dir or os.environ.get("TFDS_DATA_DIR") or DEFAULT_DATA_DIR
  return os.path.abspath(os.path.expanduser(path))


def _missing_message(name: str, split: str, data_dir: str, cause: BaseException) -> str:
  return (
      f"Dataset {name!r} (split {split!r}) is not prepared in {data_dir!r} and could not be "
      f"downloaded ({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}).\n"
      f"Fix: point TFDS_DATA_DIR (or the config's data_dir) at a directory holding a prepared "
      f"'{name}' (the standard TFDS layout {name}/<version>/...), e.g.\n"
      f"  export TFDS_DATA_DIR=../shared/tensorflow_datasets\n"
      f"or, on a machine with internet, prepare it once with\n"
      f"  python -c \"import tensorflow_datasets as tfds; tfds.builder('{name}', "
      f"data_dir='{data_dir}').download_and_prepare()\"")


def load_split(name: str, split: str, data_dir: Optional[str] = None,
               download: bool = False, size: int = 0) -> Split:
  """Loads a split into memory, images flattened and scaled to [0, 1].

  ``size > 0`` reads only the first ``size`` examples (TFDS slicing: the same arrays as reading
  the whole split and cutting it, in a fraction of the time).
  """
  # TensorFlow is the data backend only; keep it off any accelerator JAX wants.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], "GPU")
  data_dir = resolve_data_dir(data_dir)
  try:
    data = tfds.load(name, split=f"{split}[:{size}]" if size > 0 else split, data_dir=data_dir,
                     batch_size=-1, download=download, as_supervised=True)
  except ValueError as e:
    if size > 0 and "slice" in str(e):  # The data is there, the subset is too large.
      raise ValueError(f"asked for the first {size} examples of {name!r} {split!r}: {e} Lower "
                       f"config.train_subset / eval_subset.") from e
    raise DatasetNotFoundError(_missing_message(name, split, data_dir, e)) from e
  except Exception as e:  # pylint: disable=broad-except
    # tfds raises AssertionError for an unprepared set and assorted network errors when a
    # download fails offline; either way the user needs the same advice.
    raise DatasetNotFoundError(_missing_message(name, split, data_dir, e)) from e
  images, labels = tfds.as_numpy(data)
  images = images.reshape(images.shape[0], -1).astype(np.float32) / 255.0
  num_classes = tfds.builder(name, data_dir=data_dir).info.features["label"].num_classes
  return Split(images=images, labels=labels.astype(np.int32), num_classes=int(num_classes))


def epoch_order(seed: int, epoch: int, num_examples: int, batch_size: int) -> np.ndarray:
  """Indices of the batches of one epoch, ``[num_examples // batch_size, batch_size]``.

  A pure function of ``(seed, epoch)``; the incomplete last batch is dropped.
  """
  rng = np.random.default_rng([seed, epoch])
  perm = rng.permutation(num_examples)
  steps = num_examples // batch_size
  return perm[:steps * batch_size].reshape(steps, batch_size).astype(np.int32)
