"""The surrogate-gradient BPTT baseline (models/bptt.py, surrogate.py)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqspike_jax import config_lib
from eqspike_jax import layers
from eqspike_jax import network
from eqspike_jax import spiking
from eqspike_jax import surrogate as surrogate_lib
from eqspike_jax import train
from eqspike_jax.models import bptt
from eqspike_jax.models import eqspike


def test_fast_sigmoid_surrogate_by_hand_on_one_neuron_two_steps(x64):
  """One neuron from rest, input current c, gamma 0.5, two steps, deterministic spikes.

  Step 1: u1 = 0.5 c, e1 = u1, S1 = [u1 >= 1]. Step 2: u2 = 0.5 u1 + 0.5 c = 0.75 c,
  e2 = e1 - S1 + u2, S2 = [e2 >= 1]. With c = 0.8: u1 = 0.4, S1 = 0, e2 = 1.0 -> S2 = 1.
  dS2/dc = sur(e2 - 1) * d(e2)/dc with d(e2)/dc = 0.5 + 0.75 - sur(e1 - 1) * 0.5, where
  sur(v) = 1 / (10 |v| + 1)^2: sur(0) = 1, sur(-0.6) = 1 / 49.
  """
  del x64
  sur = surrogate_lib.Surrogate("fast_sigmoid", 10.0)

  def two_spikes(c):
    state = spiking.rest_state(1, jnp.float64)
    out = []
    for _ in range(2):
      state, s = spiking.neuron_step(state, jnp.array([c]), 0.5, False, surrogate=sur)
      out.append(s[0])
    return out

  s1, s2 = two_spikes(0.8)
  assert float(s1) == 0.0 and float(s2) == 1.0  # The forward pass is the spike itself.
  expected = 1.0 * (0.5 + 0.75 - (1 / 49) * 0.5)
  np.testing.assert_allclose(jax.grad(lambda c: two_spikes(c)[1])(0.8), expected, rtol=1e-12)
  np.testing.assert_allclose(jax.grad(lambda c: two_spikes(c)[0])(0.8), 0.5 / 49, rtol=1e-12)
  # Without a surrogate the spike has no derivative at all.
  state = spiking.rest_state(1, jnp.float64)
  plain = jax.grad(lambda c: spiking.neuron_step(state, jnp.array([c]), 0.5, False)[1][0])(0.8)
  assert float(plain) == 0.0


def test_straight_through_surrogate():
  np.testing.assert_array_equal(surrogate_lib.derivative("straight_through", 3.0,
                                                         jnp.array([-2.0, 0.0, 5.0])), 1.0)
  with pytest.raises(ValueError, match="surrogate must be one of"):
    surrogate_lib.derivative("nope", 1.0, jnp.zeros(2))


def _rate_network_cost(params, x, y, gamma, steps):
  """The leaky rate network written out: u <- clip((1 - g) u + g (W u + b)), input x."""
  w0, b0, w1, b1 = params[0].w, params[0].b, params[1].w, params[1].b
  h = jnp.zeros((x.shape[0], w0.shape[1]), x.dtype)
  o = jnp.zeros((x.shape[0], w1.shape[1]), x.dtype)
  for _ in range(steps):
    h, o = (jnp.clip((1 - gamma) * h + gamma * (x @ w0 + b0 + o @ w1.T), 0, 1),
            jnp.clip((1 - gamma) * o + gamma * (h @ w1 + b1), 0, 1))
  return jnp.mean(network.cost(o, y))


@pytest.mark.slow
def test_with_rates_instead_of_spikes_bptt_is_the_gradient_of_the_rate_network(x64):
  del x64
  sizes, steps, gamma = (9, 7, 4), 12, 0.3
  arch = layers.dense_stack(sizes)
  params = jax.tree.map(lambda a: a.astype(jnp.float64),
                        layers.init_params(arch, jax.random.PRNGKey(0), scale=2.0))
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(size=(5, sizes[0])))
  y = jax.nn.one_hot(jnp.arange(5) % sizes[-1], sizes[-1], dtype=jnp.float64)
  dyn = spiking.SpikingDynamics(gamma=gamma, t_free=steps, spike_mode="rate",
                                surrogate=surrogate_lib.Surrogate())
  loss = functools.partial(bptt.loss_and_metrics, arch, dyn, eqspike.Readout())
  got = jax.grad(lambda p: loss(p, x, y, None)[0])(params)
  expected = jax.grad(_rate_network_cost)(params, x, y, gamma, steps)
  for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
    np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-14)
  assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(got)) > 1e-4


def test_bptt_config_validates_and_refuses_bad_fields(load_config):
  config = load_config("mnist_bptt")
  config_lib.validate(config)
  config.bptt.surrogate = "nope"
  with pytest.raises(ValueError, match="config.bptt.surrogate"):
    config_lib.validate(config)
  config = load_config("mnist_bptt", "quick")
  config.update_mode = "online"
  with pytest.raises(ValueError, match="update_mode"):
    config_lib.validate(config)


def test_current_input_counts_one_graded_event_per_nonzero_pixel():
  """As EqSpike counts it (events.graded_input_events): the pixels [1, 0, 0.5] and [0, 0, 0]
  send 2 and 0 events over the whole free phase, not a train at every step."""
  arch = layers.dense_stack((3, 2, 1))
  params = layers.init_params(arch, jax.random.PRNGKey(0), "uniform", 1.0)
  dyn = spiking.SpikingDynamics(gamma=0.5, t_free=6, t_nudge=2, input_mode="current")
  x = jnp.array([[1.0, 0.0, 0.5], [0.0, 0.0, 0.0]])
  _, metrics = bptt.loss_and_metrics(arch, dyn, eqspike.Readout(), params, x,
                                     jax.nn.one_hot(jnp.array([0, 0]), 1), None)
  assert float(metrics["events"].free.spikes[0]) == pytest.approx(1.0)  # (2 + 0) / 2.


@pytest.mark.slow
def test_quick_bptt_run_learns_mnist(load_config, mnist_data_dir, tmp_path):
  """Chance is 10 % (binomial std ~1 % on 1000 test images); 75 % is far above it."""
  del mnist_data_dir
  summary = train.train_and_evaluate(load_config("mnist_bptt", "quick"), str(tmp_path))
  accuracies = summary["test_accuracy_per_epoch"]
  assert accuracies[-1] >= 0.75, accuracies
  assert summary["epochs"][-1]["train_events/free/synaptic_ops"] > 0
