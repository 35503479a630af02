"""MNIST (or any TFDS image classification set) as in-memory arrays, through tensorflow-datasets.

The whole split is loaded once: MNIST is 220 MB as float32, far less than a step's worth of
host-device copies over an epoch. Batches are index arrays into it; the order of each epoch is a
pure function of ``(seed, epoch)``, which is what lets an interrupted run resume exactly.

A split read through TFDS is also kept, decoded, in a cache directory (``$EQSPIKE_JAX_DATA_CACHE``,
default ``~/.cache/eqspike_jax/data``; ``off`` disables it): importing TensorFlow and decoding
the records take 5-10 s per process, the cached arrays a fraction of a second. An entry is keyed
by the prepared set's files (path, size, mtime), so re-preparing the set retires it, and carries
a checksum, so a damaged entry is detected, reported and rebuilt, never used. Arrays that are
not the prepared set's (fewer examples than its metadata counts, as under
``tfds.testing.mock_data``) are never written; a test that mocks TFDS sets the cache ``off``, or
it reads the real set's entries.

Entries also carry a dataset to a machine without TensorFlow or the TFDS copy (the GPU session
of benchmarks/gpu_session): ``export_entry`` writes a split's entry under a fixed key, and there
``$EQSPIKE_JAX_DATA_KEY`` set to that key makes the entries the only source of the data.
"""

import hashlib
import os
import tempfile
from typing import NamedTuple, Optional, Tuple

from absl import logging
import numpy as np

DEFAULT_DATA_DIR = os.path.join("~", "tensorflow_datasets")
CACHE_ENV = "EQSPIKE_JAX_DATA_CACHE"
KEY_ENV = "EQSPIKE_JAX_DATA_KEY"
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "eqspike_jax", "data")


class DatasetNotFoundError(FileNotFoundError):
  """The dataset is neither prepared in the data directory nor downloadable."""


class Split(NamedTuple):
  images: np.ndarray  # [N, H*W*C] float32 in [0, 1].
  labels: np.ndarray  # [N] int32.
  num_classes: int = 0  # Of the dataset (0: unknown).


Raw = Tuple[np.ndarray, np.ndarray, int]  # The images as TFDS decodes them, labels, classes.


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

  ``size > 0`` keeps only the first ``size`` examples. With the cache on, the whole split is
  read and cached once and every subset is cut from it; with it off, TFDS slicing reads only
  the subset (the same arrays, in a fraction of the time). With ``$EQSPIKE_JAX_DATA_KEY`` set,
  the split is read from the entry ``export_entry`` wrote under that key, and only from it.
  """
  data_dir = resolve_data_dir(data_dir)
  if os.environ.get(KEY_ENV):
    return _as_split(_read_carried(name, split, os.environ[KEY_ENV]), name, split, size)
  fingerprint = _prepared_fingerprint(name, data_dir)
  if fingerprint is None and not download:  # Said now, without starting TensorFlow.
    raise DatasetNotFoundError(_missing_message(name, split, data_dir, FileNotFoundError(
        f"{_dataset_root(name, data_dir)} holds no files")))
  caching = fingerprint is not None and cache_dir() is not None
  raw = _read_entry(_cache_path(name, split, fingerprint)) if caching else None
  if raw is None:
    raw, complete = _read_tfds(name, split, data_dir, download, 0 if caching else size)
    if caching and complete:
      _write_cached(_cache_path(name, split, fingerprint), raw)
  return _as_split(raw, name, split, size)


def _as_split(raw: Raw, name: str, split: str, size: int) -> Split:
  images, labels, num_classes = raw
  if size > images.shape[0]:
    raise ValueError(f"asked for the first {size} examples of {name!r} {split!r}, which holds "
                     f"{images.shape[0]}. Lower config.train_subset / eval_subset.")
  if size > 0:
    images, labels = images[:size], labels[:size]
  images = images.reshape(images.shape[0], -1).astype(np.float32) / 255.0
  return Split(images=images, labels=labels.astype(np.int32), num_classes=int(num_classes))


def _read_tfds(name: str, split: str, data_dir: str, download: bool,
               size: int) -> Tuple[Raw, bool]:
  """The split through TFDS, and whether it holds every example asked for.

  ``ValueError`` for a subset larger than the split. Incomplete means not the prepared set's
  arrays (``tfds.testing.mock_data`` for one), which are never cached.
  """
  # TensorFlow is the data backend only; keep it off any accelerator JAX wants.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], "GPU")
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
  info = tfds.builder(name, data_dir=data_dir).info
  complete = images.shape[0] == (size or info.splits[split].num_examples)
  return (images, labels, int(info.features["label"].num_classes)), complete


# ================================================================================================
# The cache of decoded splits.
# ================================================================================================


def cache_dir() -> Optional[str]:
  """The cache directory, or None when ``$EQSPIKE_JAX_DATA_CACHE`` is ``off``."""
  path = os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR
  return None if path == "off" else os.path.abspath(os.path.expanduser(path))


def _dataset_root(name: str, data_dir: str) -> str:
  """Where TFDS keeps ``name`` (``mnist``, ``mnist:3.0.1`` or ``name/config``)."""
  return os.path.join(data_dir, name.split(":")[0].split("/")[0])


def _prepared_fingerprint(name: str, data_dir: str) -> Optional[str]:
  """A digest of every file of the prepared set (path, size, mtime); None when it has none."""
  root = _dataset_root(name, data_dir)
  if not os.path.isdir(root):
    return None
  digest = hashlib.sha256(os.path.abspath(root).encode())
  found = False
  for folder, dirs, files in os.walk(root):
    dirs.sort()
    for file in sorted(files):
      stat = os.stat(os.path.join(folder, file))
      rel = os.path.relpath(os.path.join(folder, file), root)
      digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
      found = True
  return digest.hexdigest() if found else None


def _cache_path(name: str, split: str, fingerprint: str, directory: Optional[str] = None) -> str:
  safe = "".join(c if c.isalnum() or c in "._" else "_" for c in f"{name}-{split}")
  return os.path.join(directory or cache_dir(), f"{safe}-{fingerprint[:20]}.npz")


def export_entry(name: str, split: str, directory: str, key: str,
                 data_dir: Optional[str] = None) -> str:
  """Writes ``name``'s whole ``split`` as a compressed cache entry under ``key``; its path.

  A machine whose cache directory holds the entry reads the split with ``$EQSPIKE_JAX_DATA_KEY``
  set to ``key``, with neither TensorFlow nor the prepared TFDS copy.
  """
  if not key or os.path.basename(key) != key:
    raise ValueError(f"export key {key!r}: use a non-empty name without path separators.")
  data_dir = resolve_data_dir(data_dir)
  fingerprint = _prepared_fingerprint(name, data_dir)
  if fingerprint is None:
    raise DatasetNotFoundError(_missing_message(name, split, data_dir, FileNotFoundError(
        f"{_dataset_root(name, data_dir)} holds no files")))
  raw = _read_entry(_cache_path(name, split, fingerprint)) if cache_dir() else None
  if raw is None:
    raw, complete = _read_tfds(name, split, data_dir, False, 0)
    if not complete:
      raise ValueError(f"{name!r} {split!r} in {data_dir!r} holds fewer examples than its "
                       f"metadata counts: not exported.")
  path = _cache_path(name, split, key, directory)
  _write_cached(path, raw, compress=True, strict=True)
  os.chmod(path, 0o644)  # mkstemp's 0600 would bar another user of the machine it travels to.
  return path


def _read_carried(name: str, split: str, key: str) -> Raw:
  """The entry exported under ``key``; there is no other source, so its absence is an error."""
  if cache_dir() is None:
    raise ValueError(f"{KEY_ENV}={key!r} reads the data from exported cache entries, but "
                     f"{CACHE_ENV}=off turns the cache off. Point {CACHE_ENV} at the folder "
                     f"holding the entries, or unset {KEY_ENV}.")
  path = _cache_path(name, split, key)
  raw = _read_entry(path, then="not used, and nothing else holds the split here")
  if raw is None:
    raise DatasetNotFoundError(
        f"{KEY_ENV}={key!r} asks for the exported entry {path!r} of {name!r} {split!r}, which "
        f"is {'damaged' if os.path.exists(path) else 'not there'}. Fix: export it again "
        f"(data.export_entry, or python -m benchmarks.gpu_session.prepare) into the cache "
        f"directory ({CACHE_ENV}), or unset {KEY_ENV} to read the prepared TFDS copy.")
  return raw


def _payload_digest(images: np.ndarray, labels: np.ndarray, num_classes: int) -> str:
  digest = hashlib.sha256(f"{images.dtype}{images.shape}{labels.dtype}{labels.shape}"
                          f"{num_classes}".encode())
  digest.update(np.ascontiguousarray(images).data)
  digest.update(np.ascontiguousarray(labels).data)
  return digest.hexdigest()


def _read_entry(path: str, then: str = "reading the set through TFDS and rewriting it"
                ) -> Optional[Raw]:
  """The entry at ``path``; None when there is none; a damaged one is reported and ignored."""
  if not os.path.exists(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as entry:
      images, labels = entry["images"], entry["labels"]
      num_classes, checksum = int(entry["num_classes"]), str(entry["checksum"])
    if _payload_digest(images, labels, num_classes) != checksum:
      raise ValueError("its checksum does not match its arrays")
  except Exception as e:  # pylint: disable=broad-except
    logging.warning("The data cache entry %s is damaged (%s): %s.", path, e, then)
    return None
  return images, labels, num_classes


def _write_cached(path: str, raw: Raw, compress: bool = False, strict: bool = False) -> None:
  """Keeps ``raw`` for the next process; a cache that cannot be written is only reported.

  ``compress`` trades write time for a third of the size (entries that travel); ``strict``
  raises instead of reporting (an export that fails must say so).
  """
  images, labels, num_classes = raw
  tmp = None
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # Written beside its name and renamed: a reader (another process) sees all of it or none.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
      (np.savez_compressed if compress else np.savez)(
          f, images=images, labels=labels, num_classes=num_classes,
          checksum=_payload_digest(images, labels, num_classes))
    os.replace(tmp, path)
  except OSError as e:
    if tmp and os.path.exists(tmp):
      os.remove(tmp)
    if strict:
      raise
    logging.warning("Could not write the data cache entry %s (%s); set %s=off to stop trying.",
                    path, e, CACHE_ENV)


def epoch_order(seed: int, epoch: int, num_examples: int, batch_size: int) -> np.ndarray:
  """Indices of the batches of one epoch, ``[num_examples // batch_size, batch_size]``.

  A pure function of ``(seed, epoch)``; the incomplete last batch is dropped.
  """
  rng = np.random.default_rng([seed, epoch])
  perm = rng.permutation(num_examples)
  steps = num_examples // batch_size
  return perm[:steps * batch_size].reshape(steps, batch_size).astype(np.int32)
