"""The 'state' pairing by hand, and the alignment instrument's references against jax.grad."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqspike_jax import ep_core
from eqspike_jax import events as events_lib
from eqspike_jax import layers
from eqspike_jax import network
from eqspike_jax import spike_rule
from eqspike_jax import spiking
from eqspike_jax.analysis import alignment
from eqspike_jax.models import eqspike

SIZES = (2, 3, 2)


def _random_trace(rng, batch, steps):
  arrays = lambda: tuple(jnp.asarray(rng.uniform(size=(batch, steps, n))) for n in SIZES[1:])
  spikes = lambda: tuple(jnp.asarray(rng.integers(0, 2, (batch, steps, n)).astype(np.float64))
                         for n in SIZES[1:])
  return spiking.Trace(received=spikes(), emitted=spikes(), u=arrays(), du=arrays())


def _correlation_by_hand(s_in, trace, window):
  """``sum_t`` over the last ``window`` steps of S_pre u_post (+ u_pre S_post) / steps, loops."""
  s_in = np.asarray(s_in)
  spikes = [np.asarray(a) for a in trace.emitted]
  u_next = [np.asarray(u) + np.asarray(du) for u, du in zip(trace.u, trace.du)]
  steps = s_in.shape[1]
  first = steps - window if window else 0
  n_steps = steps - first
  out = []
  for l in range(len(SIZES) - 1):
    w = np.zeros((SIZES[l], SIZES[l + 1]))
    b = np.zeros(SIZES[l + 1])
    for n in range(s_in.shape[0]):
      for t in range(first, steps):
        for i in range(SIZES[l]):
          for j in range(SIZES[l + 1]):
            if l == 0:
              w[i, j] += s_in[n, t, i] * u_next[0][n, t, j]
            else:
              w[i, j] += 0.5 * (spikes[l - 1][n, t, i] * u_next[l][n, t, j]
                                + u_next[l - 1][n, t, i] * spikes[l][n, t, j])
        b += spikes[l][n, t]
    out.append((w / n_steps, b / n_steps))
  return out


@pytest.mark.parametrize("window", [0, 2])
def test_state_pairing_sums_by_hand(x64, window):
  del x64
  rng = np.random.default_rng(0)
  arch = layers.dense_stack(SIZES)
  params = layers.init_params(arch, jax.random.PRNGKey(0))
  s_in = jnp.asarray(rng.integers(0, 2, (2, 4, SIZES[0])).astype(np.float64))
  trace_a, trace_b = _random_trace(rng, 2, 4), _random_trace(rng, 2, 4)
  rule = spike_rule.Rule(pairing="state", window=window)
  got = rule.sums(arch, params, s_in, trace_a, None, trace_b)
  want_a = _correlation_by_hand(s_in, trace_a, window)
  want_b = _correlation_by_hand(s_in, trace_b, window)
  for layer, (wa, ba), (wb, bb) in zip(got, want_a, want_b):
    np.testing.assert_allclose(layer.w, wa - wb, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.b, ba - bb, rtol=1e-12, atol=1e-12)


def test_state_pairing_writes_only_in_its_window():
  """The event counts follow the rule: a window of 2 of 4 steps writes at those 2 steps only."""
  arch = layers.dense_stack(SIZES)
  ones = lambda n, t: jnp.ones((1, t, n))
  emitted = tuple(ones(n, 4) for n in SIZES[1:])
  rule = spike_rule.Rule(pairing="state", window=2)
  trace = spiking.Trace(received=emitted, emitted=emitted, u=emitted, du=emitted)
  counted = events_lib.phase_events(arch, ones(SIZES[0], 4), emitted, rule.paired(trace),
                                    rule.paired_input(ones(SIZES[0], 4)))
  # Every neuron spikes at every step: every synapse is written once per step of the window.
  synapses = sum(layer.num_synapses for layer in arch)
  assert float(counted.synaptic_updates) == 2 * synapses


def test_window_is_refused_outside_the_state_pairing():
  with pytest.raises(ValueError, match="window"):
    spike_rule.Rule(pairing="next_step", window=3)


def _tiny_problem(seed, sizes=(6, 5, 4, 3), batch=7):
  rng = np.random.default_rng(seed)
  arch = layers.dense_stack(sizes)
  params = layers.init_params(arch, jax.random.PRNGKey(seed))
  params = tuple(p.replace(b=p.b + 0.3) for p in params)  # Most units inside (0, 1).
  x = jnp.asarray(rng.uniform(size=(batch, sizes[0])))
  y = jax.nn.one_hot(rng.integers(0, sizes[-1], batch), sizes[-1], dtype=x.dtype)
  return arch, params, x, y


def _cosine(a, b):
  va, vb = (jnp.concatenate([jnp.ravel(l) for l in jax.tree.leaves(t)]) for t in (a, b))
  return float(va @ vb / (jnp.linalg.norm(va) * jnp.linalg.norm(vb)))


@pytest.mark.parametrize("seed", [0, 1])
def test_implicit_gradient_equals_grad_through_the_settled_phase(x64, seed):
  """The adjoint solve against jax.grad through 600 damped steps from rest (converged)."""
  del x64
  arch, params, x, y = _tiny_problem(seed)

  def loss(p):
    u, _ = alignment.settled_phase(arch, p, x, y, None, 0.2, 600)
    return jnp.mean(network.cost(u[-1], y))

  by_scan = jax.jit(jax.grad(loss))(params)
  u_star, residual = alignment.settled_phase(arch, params, x, y, None, 0.2, 600)
  implicit, adjoint_residual = alignment.true_gradient(arch, params, x, y, u_star, 1000, 0.2)
  assert float(residual) < 1e-10 and float(adjoint_residual) < 1e-10
  chex.assert_trees_all_close(implicit, by_scan, rtol=1e-7, atol=1e-10)


def _model(arch, pairing="next_step", beta=0.5, t_free=60, t_nudge=20, window=0, gamma=0.2):
  return eqspike.Model(
      arch=arch, dyn=spiking.SpikingDynamics(gamma=gamma, t_free=t_free, t_nudge=t_nudge),
      rule=spike_rule.Rule(pairing=pairing, gamma=gamma, window=window),
      nudging=ep_core.Nudging("symmetric", beta), readout=eqspike.Readout())


def test_rate_ep_reference_converges_to_the_true_gradient(x64):
  """Finite-beta bias: symmetric rate EP's error falls as beta^2 (measured 1e-2 -> 1e-4 here)."""
  del x64
  arch, params, x, y = _tiny_problem(0)
  u_star, _ = alignment.settled_phase(arch, params, x, y, None, 0.2, 600)
  true, _ = alignment.true_gradient(arch, params, x, y, u_star, 1000, 0.2)
  errors = []
  for beta in (0.1, 0.01):
    rate, residual = alignment.rate_ep_estimate(_model(arch, beta=beta), params, x, y, 600)
    assert float(residual) < 1e-8
    errors.append(float(jnp.linalg.norm(jnp.concatenate(
        [jnp.ravel(a - b) for a, b in zip(jax.tree.leaves(rate), jax.tree.leaves(true))]))))
  assert errors[1] < 0.05 * errors[0], errors
  assert np.all(alignment.layer_cosines(rate, true) > 0.9999)


@pytest.mark.parametrize("pairing,window", [("next_step", 0), ("state", 100)])
def test_settled_twin_is_rate_ep(x64, pairing, window):
  """With long phases the noise-free twin is rate EP: the finite-time bias is all that separates
  them (next-step pairing's time sum telescopes to the change of u_pre u_post, up to the sum of
  du_pre du_post; the state pairing's average over the settled window is u_pre u_post itself)."""
  del x64
  arch, params, x, y = _tiny_problem(1)
  model = _model(arch, pairing=pairing, t_free=400, t_nudge=400, window=window)
  twin = alignment.estimate(alignment.noise_free_twin(model), params, x, y, jax.random.PRNGKey(0))
  rate, _ = alignment.rate_ep_estimate(model, params, x, y, 600)
  cosines = alignment.layer_cosines(twin, rate)
  assert np.all(cosines > 0.999), cosines


def test_twin_replaces_every_spike_by_its_rate():
  arch, params, x, _ = _tiny_problem(0)
  twin = alignment.noise_free_twin(_model(arch))
  free = eqspike.free_phase(arch, params, x.astype(jnp.float32), twin.dyn, None)
  for emitted, u, du in zip(free.trace.emitted, free.trace.u, free.trace.du):
    np.testing.assert_allclose(emitted, u + du, rtol=1e-6, atol=1e-7)  # The "spikes": u.
  np.testing.assert_allclose(free.s_in, jnp.broadcast_to(x[:, None], free.s_in.shape))


def test_layer_cosines_and_norm_ratios_by_hand():
  a = (network.Layer(w=jnp.array([[1.0, 0.0]]), b=jnp.array([0.0, 0.0])),
       network.Layer(w=jnp.array([[3.0]]), b=jnp.array([4.0])))
  b = (network.Layer(w=jnp.array([[1.0, 1.0]]), b=jnp.array([0.0, 0.0])),
       network.Layer(w=jnp.array([[-3.0]]), b=jnp.array([-4.0])))
  np.testing.assert_allclose(alignment.layer_cosines(a, b), [1 / np.sqrt(2), -1.0])
  np.testing.assert_allclose(alignment.layer_norm_ratios(a, b), [1 / np.sqrt(2), 1.0], rtol=1e-6)


def test_state_pairing_is_refused_for_online_updates(load_config):
  from eqspike_jax import config_lib  # pylint: disable=g-import-not-at-top
  config = load_config("mnist_deep_eqspike")
  config.update_mode = "online"
  with pytest.raises(ValueError, match="online"):
    config_lib.validate(config)


def test_twin_keeps_everything_but_the_spikes():
  model = _model(layers.dense_stack(SIZES), pairing="state", window=5)
  twin = alignment.noise_free_twin(model)
  assert twin.dyn.rate and not model.dyn.rate
  assert dataclasses.replace(twin.dyn, spike_mode=model.dyn.spike_mode) == model.dyn
  assert (twin.rule, twin.nudging, twin.arch) == (model.rule, model.nudging, model.arch)


# ================================================================================================
# The shipped deep rule against its noise-free twin, on MNIST test images (issue 10's criterion).
# ================================================================================================
# Per-layer cosine with the twin at batch 1024, random networks (uniform init, seeds 0-4):
#   mnist_deep_eqspike (784-512-512-10, T_nudge 60): at T_nudge 30 the first layer is already
#     0.935-0.958 (mean 0.946, std 0.009), the second 0.960-0.979, the output 0.990-0.997; the
#     noise falls as 1 / T_nudge, and 60 is for trained networks (below);
#   mnist_deep3_eqspike (784-512-512-512-10, T_nudge 80): first layer 0.943-0.975 over seeds 0-2
#     (mean 0.955, std 0.018), the others 0.96-0.99 (at T_nudge 60 the first layer was 0.90-0.95
#     over seeds 0-3, too close to the bound).
# The bound 0.9 is at or below mean - 3 std of the weakest layer for both.


def _mnist_batch(size):
  from eqspike_jax import data  # pylint: disable=g-import-not-at-top
  split = data.load_split("mnist", "test", size=size)
  return jnp.asarray(split.images), jax.nn.one_hot(split.labels, 10)


def _spike_and_twin_cosines(config, params, x, y):
  model = eqspike.model_from_config(config)
  est = jax.jit(alignment.estimate, static_argnums=0)
  key = jax.random.PRNGKey(0)
  return alignment.layer_cosines(est(model, params, x, y, key),
                                 est(alignment.noise_free_twin(model), params, x, y, key))


@pytest.mark.slow
def test_three_hidden_layer_rule_tracks_its_twin_on_a_random_network(load_config,
                                                                     mnist_data_dir):
  """The shipped three-hidden-layer rule (T_nudge 80) at batch 1024, on layers of 256 to keep
  make test under 10 minutes: 0.972-0.996 per layer over seeds 0-2, where the shipped 512-wide
  network gives 0.943-0.975 in its first layer (configs/mnist_deep3_eqspike.py); both clear
  the bound."""
  del mnist_data_dir
  config = load_config("mnist_deep3_eqspike")
  config.layer_sizes, config.learning_rates = (784, 256, 256, 256, 10), (5e-4,) * 4
  params = alignment.random_network(config.layer_sizes, jax.random.PRNGKey(0))
  cosines = _spike_and_twin_cosines(config, params, *_mnist_batch(1024))
  assert np.all(cosines >= 0.9), cosines


@pytest.mark.slow
def test_two_hidden_layer_rule_tracks_its_twin_on_random_and_trained_networks(
    load_config, mnist_data_dir, tmp_path):
  """The shipped mnist_deep_eqspike at batch 1024, on a random network and after 100 training
  steps (test accuracy about 0.9); one compiled estimate serves both. The training runs its
  nudged phases at T_nudge 30 to halve its cost; the rule checked is the shipped one (60).

  Measured: random, seeds 0-2, 0.983-0.987 / 0.990-0.992 / 0.994-0.998 (0.935-0.958 /
  0.960-0.979 / 0.990-0.997 over seeds 0-4 at T_nudge 30); after these 100 steps (89.6-90.8 %
  on 500 test images; training and network seeds 0-2) 0.965-0.976 / 0.946-0.974 / 0.967-0.987
  (100 steps at T_nudge 60: 0.965 / 0.941 / 0.965); after 150 steps of the T_nudge 30 config
  (90.7 %) checked at T_nudge 30, 0.911 / 0.878 / 0.958, which the bound would catch.
  """
  del mnist_data_dir
  from eqspike_jax import train  # pylint: disable=g-import-not-at-top
  from eqspike_jax import workdir  # pylint: disable=g-import-not-at-top
  config = load_config("mnist_deep_eqspike", "quick")
  config.train_subset, config.num_epochs, config.steps_per_call = 5000, 1, 50
  config.eval_subset, config.t_nudge = 500, 30
  summary = train.train_and_evaluate(config, str(tmp_path))
  assert summary["final_test_accuracy"] > 0.8
  _, trained, _ = workdir.load_trained(str(tmp_path))
  shipped = load_config("mnist_deep_eqspike")
  x, y = _mnist_batch(1024)
  for params in (alignment.random_network(shipped.layer_sizes, jax.random.PRNGKey(0)), trained):
    cosines = _spike_and_twin_cosines(shipped, params, x, y)
    assert np.all(cosines >= 0.9), cosines


@pytest.mark.parametrize("seed", [0])
def test_twin_of_the_deep_rule_tracks_the_true_gradient_at_small_beta(load_config, mnist_data_dir,
                                                                      seed):
  """The noise-free twin of mnist_deep_eqspike's rule at beta 0.01 against the implicit gradient,
  784-128-128-10 on 256 test images. Measured on seeds 0-2: 0.990-0.998 per layer (0.966-0.989
  at beta 0.05; at the shipped beta 0.5 the finite-beta bias of the hard sigmoid's kinks leaves
  0.3-0.6 on random networks: results/alignment.json). Bound 0.97."""
  del mnist_data_dir
  config = load_config("mnist_deep_eqspike")
  config.beta, config.layer_sizes, config.learning_rates = 0.01, (784, 128, 128, 10), (5e-4,) * 3
  model = eqspike.model_from_config(config)
  params = alignment.random_network(config.layer_sizes, jax.random.PRNGKey(seed))
  x, y = _mnist_batch(256)
  twin = jax.jit(alignment.estimate, static_argnums=0)(alignment.noise_free_twin(model), params,
                                                       x, y, jax.random.PRNGKey(0))
  u_star, residual = alignment.settled_phase(model.arch, params, x, y, None, 0.2, 300)
  true, adjoint_residual = alignment.true_gradient(model.arch, params, x, y, u_star)
  assert float(residual) < 1e-4 and float(adjoint_residual) < 1e-5
  cosines = alignment.layer_cosines(twin, true)
  assert np.all(cosines >= 0.97), cosines
