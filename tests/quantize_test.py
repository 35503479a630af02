"""Low-precision synapses: the grid, unbiased stochastic rounding, the bound, and a run that learns."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from eqspike_jax import config_lib
from eqspike_jax import quantize
from eqspike_jax import train
from eqspike_jax.network import Layer


def _on_grid(w, bits, w_max):
  codes = np.asarray(w, np.float64) / (w_max / quantize.levels(bits))
  return np.allclose(codes, np.round(codes), atol=1e-4) and np.all(
      np.abs(np.round(codes)) <= quantize.levels(bits))


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_levels_and_grid_by_hand(bits):
  """4 bits: L = 7 levels each side of 0; w_max 0.7 -> delta 0.1."""
  assert quantize.levels(4) == 7 and quantize.levels(8) == 127 and quantize.levels(2) == 1
  w = jnp.linspace(-2.0, 2.0, 101)
  q = quantize.to_grid(w, bits, 0.7)
  assert _on_grid(q, bits, 0.7)
  assert float(jnp.max(jnp.abs(q))) == pytest.approx(0.7)  # Clipped to the range.
  if bits == 4:
    np.testing.assert_allclose(quantize.to_grid(jnp.array([0.04, 0.06, -0.26, 5.0]), 4, 0.7),
                               [0.0, 0.1, -0.3, 0.7], atol=1e-6)


def test_stochastic_rounding_is_unbiased_and_stays_in_range():
  """Each w lands on one of its two neighbouring levels, above with the remaining fraction."""
  w = jnp.array([0.0123, -0.0456, 0.0999, 0.69, -0.7])
  keys = jax.random.split(jax.random.PRNGKey(0), 20000)
  draws = jax.vmap(lambda k: quantize.to_grid(w, 4, 0.7, k))(keys)
  delta = 0.1
  assert np.all(np.abs(np.asarray(draws) - np.asarray(w)) <= delta + 1e-6)
  assert np.all(np.abs(np.asarray(draws)) <= 0.7 + 1e-6)
  # Standard error of the mean: delta / 2 / sqrt(20000) = 3.5e-4; bound at 4 of them.
  np.testing.assert_allclose(np.mean(draws, 0), w, atol=1.5e-3)
  assert _on_grid(draws, 4, 0.7)


def test_weight_range_uses_the_fan_in():
  assert float(quantize.weight_range(jnp.zeros((784, 512)), 8.0)) == pytest.approx(8 / 28)
  assert float(quantize.weight_range(jnp.zeros((5, 5, 1, 32)), 5.0)) == pytest.approx(1.0)


def test_quantized_optimizer_keeps_weights_on_the_grid_and_small_updates_alive():
  """Updates of a tenth of a level: nearest rounding never moves, stochastic moves on average."""
  params = (Layer(w=jnp.zeros((100, 4)), b=jnp.zeros((4,))),)
  grads = (Layer(w=jnp.full((100, 4), -1.0), b=jnp.zeros((4,))),)
  w_max = float(quantize.weight_range(params[0].w, 8.0))
  delta = w_max / quantize.levels(4)
  moved = {}
  for rounding in ("stochastic", "nearest"):
    opt = quantize.quantized(optax.sgd(0.1 * delta), 4, 8.0, rounding, jax.random.PRNGKey(1))
    p, state = params, opt.init(params)
    for _ in range(10):
      updates, state = opt.update(grads, state, p)
      p = optax.apply_updates(p, updates)
      assert _on_grid(p[0].w, 4, w_max)
    moved[rounding] = float(jnp.mean(p[0].w))
  assert moved["nearest"] == 0.0
  # Ten steps of delta / 10 each: one level on average (400 weights: sd of the mean ~0.015 delta).
  assert moved["stochastic"] == pytest.approx(delta, rel=0.15)


def test_bad_settings_are_refused():
  c = config_lib.base_config("eqspike")
  c.synapse_bits = 1
  with pytest.raises(ValueError, match="synapse_bits"):
    config_lib.validate(c)
  c.synapse_bits, c.synapse_rounding = 8, "up"
  with pytest.raises(ValueError, match="synapse_rounding"):
    config_lib.validate(c)


def test_state_quantization_by_hand():
  u = jnp.array([0.0, 0.3, 0.5, 1.0])
  np.testing.assert_allclose(quantize.quantize_state(u, 2), [0.0, 1 / 3, 2 / 3, 1.0], atol=1e-7)
  np.testing.assert_allclose(quantize.quantize_state(u, 0), u)


@pytest.mark.parametrize("bits", [4])  # The coarsest grid; 8 bits is the full run's.
def test_quick_quantized_run_learns_mnist(load_config, mnist_data_dir, tmp_path, bits):
  """The quick EqSpike config with k-bit weights: well above chance (10 %) and on the grid."""
  del mnist_data_dir
  config = load_config("mnist_eqspike", "quick")
  config.synapse_bits = bits
  config.eqspike.state_bits = 8
  summary = train.train_and_evaluate(config, str(tmp_path))
  assert summary["final_test_accuracy"] > 0.6, summary["test_accuracy_per_epoch"]
  from eqspike_jax import workdir  # pylint: disable=g-import-not-at-top
  _, params, _ = workdir.load_trained(str(tmp_path))
  for layer in params:
    assert _on_grid(layer.w, bits, float(quantize.weight_range(layer.w, config.synapse_range)))
