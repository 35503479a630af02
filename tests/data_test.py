"""Tests of the TFDS loader (under tfds.testing.mock_data), its cache, epoch orders and errors."""

import os
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from eqspike_jax import data


@pytest.fixture(name="cache")
def cache_fixture(tmp_path, monkeypatch):
  """A data cache of this test's own, empty at the start."""
  path = tmp_path / "data_cache"
  monkeypatch.setenv(data.CACHE_ENV, str(path))
  return path


def _entries(cache):
  return sorted(os.listdir(cache)) if os.path.isdir(cache) else []


def _refuse_tfds(monkeypatch):
  """Any read through TFDS fails: what loads now comes from the cache."""
  def refuse(*args, **kwargs):
    raise AssertionError(f"read through TFDS: {args} {kwargs}")
  monkeypatch.setattr(tfds, "load", refuse)


@pytest.mark.parametrize("split", ["train", "test"])
def test_load_split_under_mock_data(mnist_data_dir, split, cache):
  # mock_data reads the real metadata (split sizes) from data_dir and generates random images.
  # Without it (MockPolicy.USE_CODE) the split sizes are unknown and TFDS's batch_size=-1 asks
  # TensorFlow for a batch of sys.maxsize, which aborts the process. Its arrays are not the
  # prepared set's: the cache (empty here) must not keep them.
  with tfds.testing.mock_data(num_examples=37, data_dir=mnist_data_dir):
    loaded = data.load_split("mnist", split)
  assert loaded.images.dtype == np.float32 and loaded.labels.dtype == np.int32
  assert loaded.images.shape == (37, 784) and loaded.labels.shape == (37,)
  assert 0.0 <= loaded.images.min() and loaded.images.max() <= 1.0
  assert loaded.images.max() > 0.5  # Scaled by 255, not by something larger.
  assert np.all((0 <= loaded.labels) & (loaded.labels < 10))
  assert not _entries(cache), _entries(cache)


def test_cached_split_equals_the_tfds_read_and_serves_its_subsets(mnist_data_dir, cache,
                                                                    monkeypatch):
  monkeypatch.setenv(data.CACHE_ENV, "off")
  direct = data.load_split("mnist", "test", data_dir=mnist_data_dir)
  monkeypatch.setenv(data.CACHE_ENV, str(cache))
  first = data.load_split("mnist", "test", data_dir=mnist_data_dir)  # Reads TFDS, writes.
  assert len(_entries(cache)) == 1, _entries(cache)
  _refuse_tfds(monkeypatch)
  again = data.load_split("mnist", "test", data_dir=mnist_data_dir)
  subset = data.load_split("mnist", "test", data_dir=mnist_data_dir, size=25)
  for got in (first, again):
    np.testing.assert_array_equal(got.images, direct.images)
    np.testing.assert_array_equal(got.labels, direct.labels)
    assert (got.images.dtype, got.labels.dtype, got.num_classes) == (np.float32, np.int32, 10)
  np.testing.assert_array_equal(subset.images, direct.images[:25])
  np.testing.assert_array_equal(subset.labels, direct.labels[:25])


@pytest.mark.parametrize("damage", ["truncated", "flipped_byte", "empty", "rewritten"])
def test_a_damaged_cache_entry_is_reported_and_rebuilt(mnist_data_dir, cache, damage,
                                                       monkeypatch):
  want = data.load_split("mnist", "test", data_dir=mnist_data_dir, size=300)
  (name,) = _entries(cache)
  path = cache / name
  blob = path.read_bytes()
  if damage == "truncated":
    blob = blob[:len(blob) // 2]
  elif damage == "flipped_byte":  # Inside the images: the archive opens, its CRC fails.
    i = blob.index(b"images.npy") + 2000
    blob = blob[:i] + bytes([blob[i] ^ 0xFF]) + blob[i + 1:]
  elif damage == "empty":
    blob = b""
  if damage == "rewritten":  # A whole, readable archive whose arrays are not what was checked.
    with np.load(path) as entry:
      fields = dict(entry)
    fields["images"] = fields["images"].copy()
    fields["images"][0, 0] ^= 0xFF
    with open(path, "wb") as f:
      np.savez(f, **fields)
  else:
    path.write_bytes(blob)
  warnings = []
  monkeypatch.setattr(data.logging, "warning", lambda msg, *a: warnings.append(msg % a))
  got = data.load_split("mnist", "test", data_dir=mnist_data_dir, size=300)
  np.testing.assert_array_equal(got.images, want.images)
  np.testing.assert_array_equal(got.labels, want.labels)
  assert len(warnings) == 1 and "damaged" in warnings[0] and str(path) in warnings[0], warnings
  _refuse_tfds(monkeypatch)  # The rebuilt entry is whole again.
  np.testing.assert_array_equal(
      data.load_split("mnist", "test", data_dir=mnist_data_dir, size=300).images, want.images)
  assert len(warnings) == 1, warnings


def test_an_exported_entry_is_the_only_source_under_its_key(mnist_data_dir, cache, tmp_path,
                                                            monkeypatch):
  want = data.load_split("mnist", "test", data_dir=mnist_data_dir)
  carried = tmp_path / "carried"
  path = data.export_entry("mnist", "test", str(carried), "carry1", data_dir=mnist_data_dir)
  assert os.listdir(carried) == [os.path.basename(path)]
  # The machine it travels to: no TFDS copy, no TFDS reads, the entries as its cache.
  _refuse_tfds(monkeypatch)
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no_tfds_here"))
  monkeypatch.setenv(data.CACHE_ENV, str(carried))
  monkeypatch.setenv(data.KEY_ENV, "carry1")
  got = data.load_split("mnist", "test", size=400)
  np.testing.assert_array_equal(got.images, want.images[:400])
  np.testing.assert_array_equal(got.labels, want.labels[:400])
  assert got.num_classes == 10
  with pytest.raises(data.DatasetNotFoundError, match="not there.*export it again"):
    data.load_split("mnist", "train")  # Not exported: said, not read from elsewhere.
  with open(path, "r+b") as f:  # Damaged in transit: detected, not trusted.
    f.seek(os.path.getsize(path) // 2)
    f.write(b"\0" * 64)
  with pytest.raises(data.DatasetNotFoundError, match="damaged"):
    data.load_split("mnist", "test")
  monkeypatch.setenv(data.CACHE_ENV, "off")
  with pytest.raises(ValueError, match="turns the cache off"):
    data.load_split("mnist", "test")


def test_export_refuses_a_bad_key_and_a_missing_set(tmp_path, monkeypatch):
  with pytest.raises(ValueError, match="without path separators"):
    data.export_entry("mnist", "test", str(tmp_path), "../elsewhere")
  _refuse_tfds(monkeypatch)
  with pytest.raises(data.DatasetNotFoundError, match="TFDS_DATA_DIR"):
    data.export_entry("mnist", "test", str(tmp_path), "k", data_dir=str(tmp_path / "empty"))


def test_a_changed_prepared_set_retires_its_entries(mnist_data_dir, cache, tmp_path):
  copy = tmp_path / "tfds"
  shutil.copytree(os.path.join(mnist_data_dir, "mnist"), copy / "mnist")
  data.load_split("mnist", "test", data_dir=str(copy), size=10)
  info = next(p for p in (copy / "mnist").rglob("dataset_info.json"))
  stat = info.stat()
  os.utime(info, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # Re-prepared, say.
  data.load_split("mnist", "test", data_dir=str(copy), size=10)
  assert len(_entries(cache)) == 2, _entries(cache)


def test_the_cache_can_be_turned_off(mnist_data_dir, cache, monkeypatch):
  monkeypatch.setenv(data.CACHE_ENV, "off")
  assert data.cache_dir() is None
  data.load_split("mnist", "test", data_dir=mnist_data_dir, size=10)
  assert not _entries(cache)


def test_missing_dataset_raises_with_advice(tmp_path, monkeypatch):
  empty = str(tmp_path)  # An existing, empty directory.
  _refuse_tfds(monkeypatch)  # Without a download to try, said before TFDS is asked.
  with pytest.raises(data.DatasetNotFoundError) as info:
    data.load_split("mnist", "train", data_dir=empty, download=False)
  message = str(info.value)
  assert "'mnist'" in message
  assert empty in message
  assert "TFDS_DATA_DIR" in message
  assert isinstance(info.value, FileNotFoundError)


def test_a_versioned_name_finds_its_folder(mnist_data_dir, cache):
  got = data.load_split("mnist:3.0.1", "test", data_dir=mnist_data_dir, size=3)
  np.testing.assert_array_equal(got.images, data.load_split("mnist", "test", size=3,
                                                            data_dir=mnist_data_dir).images)
  assert len(_entries(cache)) == 2, _entries(cache)  # Each name its own entry.


def test_resolve_data_dir(monkeypatch, tmp_path):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "from_env"))
  assert data.resolve_data_dir(None) == str(tmp_path / "from_env")
  assert data.resolve_data_dir(str(tmp_path / "explicit")) == str(tmp_path / "explicit")
  monkeypatch.delenv("TFDS_DATA_DIR")
  assert data.resolve_data_dir("") == data.resolve_data_dir("~/tensorflow_datasets")


def test_epoch_order():
  seed, num_examples, batch_size = 3, 103, 10
  order = data.epoch_order(seed, 0, num_examples, batch_size)
  assert order.shape == (10, 10) and order.dtype == np.int32  # The last 3 examples are dropped.
  flat = order.ravel()
  assert len(np.unique(flat)) == flat.size
  assert flat.min() >= 0 and flat.max() < num_examples
  # A pure function of (seed, epoch).
  np.testing.assert_array_equal(order, data.epoch_order(seed, 0, num_examples, batch_size))
  assert not np.array_equal(order, data.epoch_order(seed, 1, num_examples, batch_size))
  assert not np.array_equal(order, data.epoch_order(seed + 1, 0, num_examples, batch_size))
  # Shuffled, not the identity.
  assert not np.array_equal(flat, np.arange(flat.size))


def test_epoch_orders_cover_all_examples_when_batches_divide():
  orders = [data.epoch_order(0, epoch, 60, 12) for epoch in range(3)]
  for order in orders:
    np.testing.assert_array_equal(np.sort(order.ravel()), np.arange(60))


def test_load_split_size_reads_the_first_examples(mnist_data_dir):
  # Real MNIST: mock_data ignores TFDS's split slicing.
  whole = data.load_split("mnist", "test", data_dir=mnist_data_dir)
  first = data.load_split("mnist", "test", data_dir=mnist_data_dir, size=10)
  np.testing.assert_array_equal(first.images, whole.images[:10])
  np.testing.assert_array_equal(first.labels, whole.labels[:10])
  with pytest.raises(ValueError, match="first 10001 examples.*eval_subset"):
    data.load_split("mnist", "test", data_dir=mnist_data_dir, size=10001)
