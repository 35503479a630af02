"""Random translations of the training images (``config.augment_shift``), a data-side regularizer.

Each training example is moved by a whole number of pixels in each direction, drawn uniformly
from ``[-s, s]``, the uncovered border filled with zeros (background). The shift of an example
is a pure function of the seed, the step and the example's index in the training split, so a
resumed run draws the same shifts, and a batch split over devices draws, example by example,
what one device would. The network and the rule are untouched: a chip sees other images, and
writes no more synapses.
"""

from typing import Callable, Optional, Sequence

import chex
import jax
import jax.numpy as jnp
import ml_collections

STREAM = 3  # Of the seed's keys: 0 parameters, 1 steps, 2 rounding and evaluation.


def augment_key(seed: int) -> chex.PRNGKey:
  return jax.random.fold_in(jax.random.PRNGKey(seed), STREAM)


def shift_images(images: chex.Array, shifts: chex.Array, image_shape: Sequence[int],
                 max_shift: int) -> chex.Array:
  """``images`` [B, H*W*C] moved by ``shifts`` [B, 2] (rows down, columns right), zero-filled.

  ``max_shift`` bounds ``|shifts|`` (the padding; static).
  """
  height, width, channels = image_shape
  chex.assert_shape(images, (None, height * width * channels))
  chex.assert_shape(shifts, (images.shape[0], 2))
  s = max_shift
  padded = jnp.pad(images.reshape(-1, height, width, channels), ((0, 0), (s, s), (s, s), (0, 0)))

  def one(image, shift):
    # The output pixel (i, j) is the input's (i - dy, j - dx): padded (s + i - dy, s + j - dx).
    return jax.lax.dynamic_slice(image, (s - shift[0], s - shift[1], 0),
                                 (height, width, channels))

  return jax.vmap(one)(padded, shifts).reshape(images.shape)


def draw_shifts(key: chex.PRNGKey, step: chex.Array, example_ids: chex.Array,
                max_shift: int) -> chex.Array:
  """[B, 2] int32 shifts in ``[-max_shift, max_shift]``, one pair per (step, example index)."""
  chex.assert_rank(example_ids, 1)
  step_key = jax.random.fold_in(key, step)
  return jax.vmap(lambda i: jax.random.randint(
      jax.random.fold_in(step_key, i), (2,), -max_shift, max_shift + 1))(example_ids)


def make_augment(config: ml_collections.ConfigDict) -> Optional[Callable]:
  """``(images [B, D], example_ids [B], step) -> images``, or None when ``augment_shift`` is 0."""
  s = int(config.get("augment_shift", 0))
  if s == 0:
    return None
  key, shape = augment_key(config.seed), tuple(config.input_shape)

  def augment(images, example_ids, step):
    return shift_images(images, draw_shifts(key, step, example_ids, s), shape, s)

  return augment
