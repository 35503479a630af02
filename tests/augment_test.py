"""Random image shifts (augment.py): by hand, per example and step, and refused when ill-posed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqspike_jax import augment
from eqspike_jax import config_lib

SHAPE = (5, 6, 1)


def _dot(row, col):
  image = np.zeros(SHAPE, np.float32)
  image[row, col, 0] = 1.0
  return image.reshape(-1)


def test_a_shift_moves_a_pixel_by_hand():
  images = jnp.stack([_dot(2, 3), _dot(2, 3), _dot(0, 0), _dot(4, 5)])
  shifts = jnp.array([[1, -2], [0, 0], [-1, 0], [0, 1]])  # The last two push it off the image.
  got = np.asarray(augment.shift_images(images, shifts, SHAPE, 2)).reshape(-1, *SHAPE)
  np.testing.assert_array_equal(got[0], _dot(3, 1).reshape(SHAPE))
  np.testing.assert_array_equal(got[1], _dot(2, 3).reshape(SHAPE))
  assert got[2].sum() == 0 and got[3].sum() == 0


def test_shifts_are_a_function_of_step_and_example_and_cover_the_range():
  key = augment.augment_key(0)
  ids = jnp.arange(4000)
  shifts = np.asarray(augment.draw_shifts(key, 7, ids, 2))
  assert shifts.min() == -2 and shifts.max() == 2
  counts = np.bincount(shifts[:, 0] + 2, minlength=5)
  assert counts.min() > 0.8 * 4000 / 5, counts  # Uniform: each value 800 +- 26 (binomial std).
  # Split across devices: each half draws, example by example, what the whole batch does.
  halves = np.concatenate([augment.draw_shifts(key, 7, ids[:2000], 2),
                           augment.draw_shifts(key, 7, ids[2000:], 2)])
  np.testing.assert_array_equal(halves, shifts)
  assert not np.array_equal(augment.draw_shifts(key, 8, ids, 2), shifts)  # Another step.
  assert not np.array_equal(augment.draw_shifts(augment.augment_key(1), 7, ids, 2), shifts)


def test_make_augment_is_none_when_off_and_jits():
  config = config_lib.base_config("eqspike")
  assert augment.make_augment(config) is None
  config.augment_shift = 2
  fn = augment.make_augment(config)
  images = jax.random.uniform(jax.random.PRNGKey(0), (8, 784))
  ids, step = jnp.arange(8) * 3, jnp.int32(5)
  eager = fn(images, ids, step)
  np.testing.assert_array_equal(jax.jit(fn)(images, ids, step), eager)
  assert eager.shape == images.shape and not np.array_equal(eager, images)


@pytest.mark.parametrize("change, match", [
    (dict(augment_shift=-1), "non-negative"),
    (dict(augment_shift=14), "under half"),
    (dict(augment_shift=2, input_shape=(28, 27, 1)), "input_shape"),
])
def test_invalid_augmentation_is_refused(change, match):
  config = config_lib.base_config("eqspike")
  config.update(change)
  with pytest.raises(ValueError, match=match):
    config_lib.validate(config)
