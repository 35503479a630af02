"""Tests of the TFDS loader (under tfds.testing.mock_data), epoch orders and errors."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from eqspike_jax import data


@pytest.mark.parametrize("split", ["train", "test"])
def test_load_split_under_mock_data(mnist_data_dir, split):
  # mock_data reads the real metadata (split sizes) from data_dir and generates random images.
  # Without it (MockPolicy.USE_CODE) the split sizes are unknown and TFDS's batch_size=-1 asks
  # TensorFlow for a batch of sys.maxsize, which aborts the process.
  with tfds.testing.mock_data(num_examples=37, data_dir=mnist_data_dir):
    loaded = data.load_split("mnist", split)
  assert loaded.images.dtype == np.float32 and loaded.labels.dtype == np.int32
  assert loaded.images.shape == (37, 784) and loaded.labels.shape == (37,)
  assert 0.0 <= loaded.images.min() and loaded.images.max() <= 1.0
  assert loaded.images.max() > 0.5  # Scaled by 255, not by something larger.
  assert np.all((0 <= loaded.labels) & (loaded.labels < 10))


def test_missing_dataset_raises_with_advice(tmp_path):
  empty = str(tmp_path)  # An existing, empty directory.
  with pytest.raises(data.DatasetNotFoundError) as info:
    data.load_split("mnist", "train", data_dir=empty, download=False)
  message = str(info.value)
  assert "'mnist'" in message
  assert empty in message
  assert "TFDS_DATA_DIR" in message
  assert isinstance(info.value, FileNotFoundError)


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
