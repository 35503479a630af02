"""Tests of the network's parameter pytree, activations, cost and classification metrics.

Initialisation, sizes and zero states moved to ``layers`` (tests/layers_test.py).
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqspike_jax import network
from eqspike_jax.network import Layer


def test_layer_is_a_pytree_of_w_and_b():
  """Optimizers, checkpoints and tree maps see exactly the two arrays, w then b."""
  layer = Layer(w=jnp.ones((3, 2)), b=jnp.zeros(2))
  leaves, treedef = jax.tree.flatten(layer)
  chex.assert_shape(leaves, [(3, 2), (2,)])
  doubled = jax.tree.map(lambda a: 2 * a + 1, layer)
  assert isinstance(doubled, Layer)
  chex.assert_trees_all_equal(doubled, Layer(w=3 * jnp.ones((3, 2)), b=jnp.ones(2)))
  chex.assert_trees_all_equal(jax.tree.unflatten(treedef, leaves), layer)  # The round trip.


def test_activations():
  v = jnp.array([-1.0, 0.0, 0.25, 0.5, 1.0, 2.0])
  expected = 1.0 / (1.0 + np.exp(-4.0 * (np.asarray(v) - 0.5)))
  np.testing.assert_allclose(network.sigmoid4(v), expected, rtol=1e-6)
  np.testing.assert_allclose(network.sigmoid4(0.5), 0.5)
  np.testing.assert_allclose(jax.grad(network.sigmoid4)(0.5), 1.0, rtol=1e-6)  # Slope 1 at 1/2.
  np.testing.assert_array_equal(network.hard_sigmoid(v), [0.0, 0.0, 0.25, 0.5, 1.0, 1.0])
  assert network.get_activation("sigmoid4") is network.sigmoid4
  assert network.get_activation("hard_sigmoid") is network.hard_sigmoid
  assert set(network.ACTIVATIONS) == {"sigmoid4", "hard_sigmoid"}
  with pytest.raises(ValueError, match="'relu'"):
    network.get_activation("relu")


def test_cost():
  s_out = jnp.array([[0.2, 0.9, 0.1], [0.5, 0.5, 0.5]])
  y = jnp.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
  np.testing.assert_allclose(network.cost(s_out, y), [0.5 * (0.04 + 0.01 + 0.01), 0.5 * 0.75],
                             rtol=1e-6)
  with pytest.raises(AssertionError):
    network.cost(s_out, y[:, :2])


def test_classification_metrics_by_hand():
  out = jnp.array([[0.2, 0.9, 0.1], [0.5, 0.4, 0.3], [0.1, 0.2, 0.7]])
  y = jnp.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
  metrics = network.classification_metrics(out, y)
  # Examples 0 and 2 are right, example 1 (argmax 0 for class 1) is wrong.
  np.testing.assert_allclose(metrics["accuracy"], 2.0 / 3.0, rtol=1e-6)
  expected_loss = np.mean([0.5 * (0.04 + 0.01 + 0.01), 0.5 * (0.25 + 0.36 + 0.09),
                           0.5 * (0.01 + 0.04 + 0.09)])
  np.testing.assert_allclose(metrics["loss"], expected_loss, rtol=1e-6)
  assert set(metrics) == {"loss", "accuracy"}
  with pytest.raises(AssertionError):  # One example, not a batch.
    network.classification_metrics(out[0], y[0])
