"""Tests of the network's parameters, activations and cost."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqspike_jax import network

SIZES = (7, 5, 3)


def test_init_params_shapes_and_uniform_bounds():
  params = network.init_params(jax.random.PRNGKey(0), SIZES)
  chex.assert_shape([l.w for l in params], [(7, 5), (5, 3)])
  chex.assert_shape([l.b for l in params], [(5,), (3,)])
  assert network.layer_sizes_of(params) == SIZES
  for layer, fan_in in zip(params, SIZES[:-1]):
    bound = 1.0 / np.sqrt(fan_in)
    for a in (layer.w, layer.b):
      assert np.all(np.abs(a) <= bound)
      assert np.max(np.abs(a)) > 0.5 * bound  # Spread over the range, not all near 0.


def test_init_params_glorot_and_scale():
  params = network.init_params(jax.random.PRNGKey(0), SIZES, init="glorot", scale=2.0)
  for layer, fan_in, fan_out in zip(params, SIZES[:-1], SIZES[1:]):
    assert np.all(np.abs(layer.w) <= 2.0 * np.sqrt(6.0 / (fan_in + fan_out)))
    np.testing.assert_array_equal(layer.b, 0.0)
  unscaled = network.init_params(jax.random.PRNGKey(0), SIZES, init="glorot")
  chex.assert_trees_all_close([l.w for l in params], [2.0 * l.w for l in unscaled])


def test_init_params_rejects_unknown_init():
  with pytest.raises(ValueError, match="'xavier'"):
    network.init_params(jax.random.PRNGKey(0), SIZES, init="xavier")


def test_zero_state():
  params = network.init_params(jax.random.PRNGKey(0), SIZES)
  state = network.zero_state(params)
  chex.assert_shape(state, [(5,), (3,)])
  chex.assert_trees_all_equal(state, (jnp.zeros(5), jnp.zeros(3)))


def test_activations():
  v = jnp.array([-1.0, 0.0, 0.25, 0.5, 1.0, 2.0])
  expected = 1.0 / (1.0 + np.exp(-4.0 * (np.asarray(v) - 0.5)))
  np.testing.assert_allclose(network.sigmoid4(v), expected, rtol=1e-6)
  np.testing.assert_allclose(network.sigmoid4(0.5), 0.5)
  np.testing.assert_allclose(jax.grad(network.sigmoid4)(0.5), 1.0, rtol=1e-6)  # Slope 1 at 1/2.
  np.testing.assert_array_equal(network.hard_sigmoid(v), [0.0, 0.0, 0.25, 0.5, 1.0, 1.0])
  assert network.get_activation("sigmoid4") is network.sigmoid4
  assert network.get_activation("hard_sigmoid") is network.hard_sigmoid
  with pytest.raises(ValueError, match="'relu'"):
    network.get_activation("relu")


def test_cost():
  s_out = jnp.array([[0.2, 0.9, 0.1], [0.5, 0.5, 0.5]])
  y = jnp.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
  np.testing.assert_allclose(network.cost(s_out, y), [0.5 * (0.04 + 0.01 + 0.01), 0.5 * 0.75],
                             rtol=1e-6)
  with pytest.raises(AssertionError):
    network.cost(s_out, y[:, :2])
