"""Tests of the per-layer optimizers."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from eqspike_jax import optim
from eqspike_jax.network import Layer


def _params_and_grads():
  rng = np.random.default_rng(0)
  shapes = ((6, 4), (4, 3))
  params = tuple(Layer(w=jnp.asarray(rng.normal(size=s), jnp.float32),
                       b=jnp.asarray(rng.normal(size=s[1:]), jnp.float32)) for s in shapes)
  grads = tuple(Layer(w=jnp.asarray(rng.normal(size=s), jnp.float32),
                      b=jnp.asarray(rng.normal(size=s[1:]), jnp.float32)) for s in shapes)
  return params, grads


def test_sgd_applies_each_layers_rate():
  params, grads = _params_and_grads()
  rates = (0.1, 0.003)
  optimizer = optim.make_optimizer("sgd", rates)
  updates, _ = jax.jit(optimizer.update)(grads, optimizer.init(params), params)
  expected = tuple(Layer(w=-lr * g.w, b=-lr * g.b) for lr, g in zip(rates, grads))
  chex.assert_trees_all_close(updates, expected, rtol=1e-6)
  new_params = optax.apply_updates(params, updates)
  for lr, p, q, g in zip(rates, params, new_params, grads):
    np.testing.assert_allclose(q.w - p.w, -lr * g.w, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(q.b - p.b, -lr * g.b, rtol=1e-5, atol=1e-7)


def test_sgd_momentum_per_layer():
  params, grads = _params_and_grads()
  rates, momentum = (0.1, 0.003), 0.9
  optimizer = optim.make_optimizer("sgd", rates, momentum=momentum)
  update = jax.jit(optimizer.update)
  _, state = update(grads, optimizer.init(params), params)
  updates, _ = update(grads, state, params)  # Second step, same gradient.
  expected = tuple(Layer(w=-lr * (1 + momentum) * g.w, b=-lr * (1 + momentum) * g.b)
                   for lr, g in zip(rates, grads))
  chex.assert_trees_all_close(updates, expected, rtol=1e-5)


def test_adam_applies_each_layers_rate():
  """Adam's first step moves every parameter by its layer's rate (times the gradient's sign)."""
  params, grads = _params_and_grads()
  rates = (1e-2, 4e-4)
  optimizer = optim.make_optimizer("adam", rates)
  updates, _ = jax.jit(optimizer.update)(grads, optimizer.init(params), params)
  for lr, u, g in zip(rates, updates, grads):
    for name in ("w", "b"):
      np.testing.assert_allclose(getattr(u, name), -lr * np.sign(getattr(g, name)), rtol=1e-4)


@pytest.mark.parametrize("rates", [(0.1,), (0.1, 0.2, 0.3)])
def test_wrong_number_of_rates_raises(rates):
  params, _ = _params_and_grads()
  optimizer = optim.make_optimizer("sgd", rates)
  with pytest.raises(ValueError, match=f"{len(rates)} learning rates for 2 weight layers"):
    optimizer.init(params)


def test_unknown_optimizer_raises():
  with pytest.raises(ValueError, match="'rmsprop'"):
    optim.make_optimizer("rmsprop", (0.1, 0.1))


def test_schedules_by_hand():
  constant = optim.schedule("constant", 0.3)
  np.testing.assert_allclose([constant(0), constant(1000)], [0.3, 0.3])
  cosine = optim.schedule("cosine", 0.2, total_steps=10, final_fraction=0.1)
  # optax: lr ((1 - alpha) (1 + cos(pi t / T)) / 2 + alpha), constant at alpha lr after T.
  for t in (0, 3, 5, 10, 15):
    expected = 0.2 * (0.9 * 0.5 * (1 + np.cos(np.pi * min(t, 10) / 10)) + 0.1)
    np.testing.assert_allclose(cosine(t), expected, rtol=1e-6)


def test_schedule_refusals():
  with pytest.raises(ValueError, match="total number of optimizer steps"):
    optim.schedule("cosine", 0.1, total_steps=0)
  with pytest.raises(ValueError, match="'linear'"):
    optim.schedule("linear", 0.1, total_steps=10)


def test_cosine_schedule_per_layer_with_sgd():
  """Each layer follows its own rate's schedule: after k steps, lr_l(k) times the gradient."""
  params, grads = _params_and_grads()
  rates = (0.1, 0.003)
  optimizer = optim.make_optimizer("sgd", rates, lr_schedule="cosine", total_steps=4,
                                   final_fraction=0.0)
  update = jax.jit(optimizer.update)
  state = optimizer.init(params)
  for k in range(5):
    updates, state = update(grads, state, params)
    factor = 0.5 * (1 + np.cos(np.pi * min(k, 4) / 4))
    expected = tuple(Layer(w=-lr * factor * g.w, b=-lr * factor * g.b)
                     for lr, g in zip(rates, grads))
    chex.assert_trees_all_close(updates, expected, rtol=1e-5, atol=1e-8)
