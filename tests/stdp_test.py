"""Tests of the STDP measurements (analysis/stdp.py, EQSPIKE.md section 5).

Analytic: one neuron driven from rest, and the isolated-synapse window, against values worked out
by hand for gamma 0.2 and a unit drive (u = 0.2, 0.36, 0.488: the first spike after 3 steps).
Structure: potentiation when pre precedes post, depression (decaying by 1 - gamma per step) when it
follows, flipped with beta; the two-term rule of a free synapse is even in dt. Equivalence: the
factored pair counting against a brute-force loop over every spike pair. End to end: on real MNIST
the symmetric-EP change per spike pair of the first training step has the STDP sign.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqspike_jax import config_lib
from eqspike_jax import data as data_lib
from eqspike_jax import registry
from eqspike_jax.analysis import stdp
from eqspike_jax.models import eqspike

GAMMA = 0.2
BETA = 0.5
U_PEAK = 0.488  # u after 3 steps of unit drive: 0.2, 0.2 * 0.8 + 0.2 = 0.36, 0.36 * 0.8 + 0.2.


def test_one_neuron_by_hand():
  u, du, spikes = stdp.run_neuron(stdp.drive_step(6, 1, 3, 1.0), GAMMA)
  # Rest, then three steps of drive, then decay by 0.8 per step.
  np.testing.assert_allclose(u, [0.0, 0.0, 0.2, 0.36, 0.488, 0.3904, 0.31232], rtol=1e-6)
  np.testing.assert_allclose(du, np.diff(u), rtol=1e-6)
  # e: 0.2, 0.56, 1.048 -> spike at the drive's third step; then 0.048 + 0.3904 + 0.31232 < 1.
  np.testing.assert_array_equal(spikes, [0, 0, 0, 1, 0, 0])
  assert stdp.steps_to_spike(GAMMA, 1.0) == 3
  assert stdp.steps_to_spike(1.0, 1.0) == 1
  with pytest.raises(ValueError, match="never makes"):
    stdp.steps_to_spike(GAMMA, 1e-3, max_steps=100)  # u -> 1e-3: e needs about 1000 steps.


def test_isolated_input_window_by_hand():
  dt, dw = stdp.isolated_window(stdp.Protocol(gamma=GAMMA), BETA, max_lag=6)
  window = dict(zip(dt.tolist(), dw.tolist()))
  assert sorted(window) == list(range(-6, 7))
  # Pre 1, 2, 3 steps before post's first spike meets the rise du = 0.2 * 0.8^(3 - dt).
  for lag, du in ((3, 0.2), (2, 0.16), (1, 0.128)):
    np.testing.assert_allclose(window[lag], du / BETA, rtol=1e-5)
  # At and after it, the decay: du = -gamma * u_peak * 0.8^k.
  for lag in range(0, -7, -1):
    np.testing.assert_allclose(window[lag], -GAMMA * U_PEAK * 0.8 ** (-lag) / BETA, rtol=1e-5)
  # Before the drive the postsynaptic state does not move.
  for lag in (4, 5, 6):
    assert window[lag] == 0.0


@pytest.mark.parametrize("gamma", [0.1, 0.2, 0.5])
def test_isolated_window_sign_structure_flips_with_beta(gamma):
  protocol = stdp.Protocol(gamma=gamma, num_steps=80, post_onset=40)
  width = stdp.steps_to_spike(gamma, 1.0)
  dt, plus = stdp.isolated_window(protocol, BETA, max_lag=15)
  dt_minus, minus = stdp.isolated_window(protocol, -BETA, max_lag=15)
  np.testing.assert_array_equal(dt, dt_minus)
  rise = (dt >= 1) & (dt <= width)
  assert np.all(plus[rise] > 0) and np.all(plus[dt <= 0] < 0)
  np.testing.assert_allclose(minus, -plus, rtol=1e-6)
  # The depression decays over 1 / gamma: by 1 - gamma per step.
  after = plus[dt <= 0]  # Ordered from dt = -15 to 0.
  np.testing.assert_allclose(after[:-1] / after[1:], 1 - gamma, rtol=1e-4)


def test_self_coupling_shifts_the_window():
  """With a weight, the presynaptic spike itself lifts the postsynaptic state by gamma w."""
  dt, bare = stdp.isolated_window(stdp.Protocol(gamma=GAMMA), BETA, max_lag=8)
  _, coupled = stdp.isolated_window(stdp.Protocol(gamma=GAMMA, weight=0.3), BETA, max_lag=8)
  before = dt > 3  # Post at rest, so nothing is clipped and the shift is exact.
  np.testing.assert_allclose(coupled[before] - bare[before], GAMMA * 0.3 / BETA, rtol=1e-5)


def test_free_synapse_window_is_even():
  """The two-term rule is symmetric in pre and post, so with equal drives it is even in dt."""
  dt, dw = stdp.isolated_window(stdp.Protocol(gamma=GAMMA, kind="free"), BETA, max_lag=12)
  window = dict(zip(dt.tolist(), dw.tolist()))
  assert sorted(window) == list(range(-12, 13))
  for lag in range(1, 13):
    np.testing.assert_allclose(window[lag], window[-lag], rtol=1e-5, atol=1e-7)
  # Far apart, each spike meets the other's decay: depression on both sides.
  assert window[12] < 0


def test_protocol_refuses_bad_values():
  with pytest.raises(ValueError, match="kind"):
    stdp.Protocol(kind="hidden")
  with pytest.raises(ValueError, match="post_onset"):
    stdp.Protocol(post_onset=70)
  with pytest.raises(ValueError, match="amplitude"):
    stdp.Protocol(amplitude=0.0)


def _brute_force(pre_paired, du_post, post_time, pre_time, max_lag, du_pre=None,
                 post_paired=None):
  batch, steps, n = pre_time.shape
  m = post_time.shape[2]
  change = np.zeros(2 * max_lag + 1)
  pairs = np.zeros(2 * max_lag + 1)
  for b, i, j, t, t2 in itertools.product(range(batch), range(n), range(m), range(steps),
                                          range(steps)):
    lag = t2 - t
    if abs(lag) > max_lag or not (pre_time[b, t, i] and post_time[b, t2, j]):
      continue
    pairs[lag + max_lag] += 1
    # The rule's change at the presynaptic spike (its paired index) and at the postsynaptic one.
    change[lag + max_lag] += pre_paired[b, t, i] / pre_time[b, t, i] * du_post[b, t, j]
    if du_pre is not None:
      change[lag + max_lag] += post_paired[b, t2, j] / post_time[b, t2, j] * du_pre[b, t2, i]
  return change, pairs


@pytest.mark.parametrize("two_terms", [False, True])
def test_pair_window_against_every_pair(two_terms):
  rng = np.random.default_rng(0)
  batch, steps, n, m, max_lag = 2, 7, 3, 4, 3
  pre = (rng.random((batch, steps, n)) < 0.4).astype(np.float32)
  post = (rng.random((batch, steps, m)) < 0.4).astype(np.float32)
  du_post = rng.normal(size=(batch, steps, m)).astype(np.float32)
  du_pre = rng.normal(size=(batch, steps, n)).astype(np.float32) if two_terms else None
  # Here the paired spikes are the delivered ones, so the brute force can use one array.
  change, pairs = stdp.pair_window(pre, du_post, post, pre, max_lag, du_pre,
                                   post if two_terms else None)
  want_change, want_pairs = _brute_force(pre, du_post, post, pre, max_lag, du_pre,
                                         post if two_terms else None)
  np.testing.assert_allclose(pairs, want_pairs)
  np.testing.assert_allclose(change, want_change, rtol=1e-5, atol=1e-5)


def tiny_model(pairing="next_step"):
  c = config_lib.base_config("eqspike")
  c.layer_sizes, c.learning_rates, c.init_scale = (12, 8, 3), (1e-3, 1e-3), 3.0
  c.t_free, c.t_nudge, c.beta, c.nudging = 9, 7, 0.4, "symmetric"
  c.eqspike.gamma, c.eqspike.pairing = 0.3, pairing
  config_lib.validate(c)
  return c, eqspike.model_from_config(c)


@pytest.mark.slow
@pytest.mark.parametrize("pairing", ["next_step", "same_step"])
def test_in_vivo_window_on_a_tiny_network(pairing):
  config, model = tiny_model(pairing)
  params = registry.init_params(config)
  x = jax.random.uniform(jax.random.PRNGKey(2), (5, 12))
  y = jax.nn.one_hot(jnp.array([0, 1, 2, 0, 1]), 3)
  window = stdp.in_vivo_window(model, params, x, y, jax.random.PRNGKey(3), max_lag=4,
                               batch_size=2)
  np.testing.assert_array_equal(window["lags"], np.arange(-4, 5))
  for l, phase in itertools.product((0, 1), ("plus", "minus", "zero")):
    assert window[f"layer{l}/{phase}/change"].shape == (9,)
    assert np.sum(window[f"layer{l}/{phase}/pairs"]) > 0
  # The symmetric window weighs each phase by its pairs.
  net = stdp.symmetric_window(window, 1)
  p, m = window["layer1/plus/pairs"], window["layer1/minus/pairs"]
  np.testing.assert_allclose(
      net, (window["layer1/plus/change"] * p + window["layer1/minus/change"] * m) / (p + m),
      rtol=1e-6)
  with pytest.raises(ValueError, match="max_lag"):
    stdp.in_vivo_window(model, params, x, y, jax.random.PRNGKey(3), max_lag=7)


@pytest.mark.slow
@pytest.mark.parametrize("pairing", ["next_step", "same_step"])
def test_in_vivo_changes_sum_to_the_rule(pairing):
  """Over every lag, the input layer's credited changes are the rule's own sums.

  With ``max_lag = t_nudge - 1`` every input spike of the phase pairs with every hidden spike, so
  synapse (i, j)'s credit summed over lags is ``N_j sum_t S_i(t) du_j(t)``, with ``N_j`` the
  hidden neuron's spikes received in the phase: ``Rule.sums``' weight sum of layer 0, weighted
  by the pairs each of its changes is credited in.
  """
  config, model = tiny_model(pairing)
  params = registry.init_params(config)
  x = jax.random.uniform(jax.random.PRNGKey(4), (1, 12))  # One example: N_j is its own.
  y = jax.nn.one_hot(jnp.array([2]), 3)
  key = jax.random.PRNGKey(5)
  window = stdp.in_vivo_window(model, params, x, y, key, max_lag=model.dyn.t_nudge - 1)
  s_in, (plus, _, _) = stdp.nudged_traces(model, params, x, y, key, (0.4, -0.4, 0.0))
  n_post = jnp.sum(plus.received[0][0], axis=0)  # [n_1]
  rule_w = model.rule.sums(model.arch, params, s_in, plus)[0].w  # [n_0, n_1]
  assert float(jnp.sum(n_post)) > 0
  total = np.sum(window["layer0/plus/change"] * window["layer0/plus/pairs"])
  np.testing.assert_allclose(total, float(jnp.sum(rule_w * n_post)) / 0.4, rtol=1e-4)


@pytest.mark.slow
def test_in_vivo_window_of_the_first_step_on_mnist_has_the_stdp_sign(mnist_data_dir,
                                                                    load_config):
  """Real images, the default network at its initial weights: pre-before-post potentiates."""
  config = load_config("mnist_eqspike")
  model = eqspike.model_from_config(config)
  params = registry.init_params(config)
  split = data_lib.load_split("mnist", "train", mnist_data_dir, False, size=500)
  x = jnp.asarray(split.images)
  y = jax.nn.one_hot(split.labels, 10)
  window = stdp.in_vivo_window(model, params, x, y, jax.random.PRNGKey(0), max_lag=6)
  net = stdp.symmetric_window(window, layer=1)
  # Measured 94 % (16 of 17 lags) over 2000 images and 8 lags; a window without timing
  # structure sits near 50 %.
  assert stdp.stdp_sign_fraction(window["lags"], net) >= 0.75, net
  # Each phase alone is dominated by beta-independent correlations that the difference removes.
  plus = window["layer1/plus/change"]
  assert np.max(np.abs(plus)) > 3 * np.max(np.abs(net))
