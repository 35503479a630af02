"""Tests of the spiking network (spiking.py, spike_rule.py, events.py, models/eqspike.py).

Three levels: analytic values (the sigma-delta encoder, one neuron, one network step written out in
numpy, event counts counted by hand); equivalences (the time-averaged spiking state against the
fixed point of the rate network with the hard sigmoid, the spike-driven rule against rate EP and
``jax.grad``, jit against no jit, vmap against a loop, same key against same spikes); an end-to-end
run on the real MNIST.

Sizes are distinct on purpose (time != batch != width) so that a swapped axis cannot pass.
"""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from eqspike_jax import data as data_lib
from eqspike_jax import ep_core
from eqspike_jax import events as events_lib
from eqspike_jax import layers
from eqspike_jax import network
from eqspike_jax import spike_rule
from eqspike_jax import spiking
from eqspike_jax import train
from eqspike_jax.models import eqspike
from eqspike_jax.models import rate_ep
from eqspike_jax.network import Layer

DETERMINISTIC = spiking.SpikingDynamics(gamma=0.3, t_free=11, t_nudge=6)
STOCHASTIC = spiking.SpikingDynamics(gamma=0.3, t_free=11, t_nudge=6, spike_mode="stochastic")


def _arch(params):
  return layers.dense_stack((params[0].w.shape[0],) + tuple(p.w.shape[1] for p in params))


def eqspike_gradient(params, x, y, key, *, dyn, beta, nudging, free_contrast=True,
                     pairing="same_step", debias=False):
  """The model's estimate of dC/dtheta for a batch, through the EP core (as training runs it).

  Most measurements below were made with same-step pairing (the rule as EQSPIKE.md writes it);
  the shipped next-step pairing has tests of its own. ``beta`` may be traced.
  """
  model = eqspike.Model(arch=_arch(params), dyn=dyn,
                        rule=spike_rule.Rule(pairing=pairing, debias=debias, gamma=dyn.gamma),
                        nudging=ep_core.Nudging(nudging, beta), readout=eqspike.Readout(),
                        free_contrast=free_contrast)
  betas = model.nudging.betas(jax.random.fold_in(key, 1), x.dtype)
  return ep_core.estimate_gradient(model.estimate, model.nudging, params, x, y, betas, key)


_STATIC = ("dyn", "nudging", "free_contrast", "pairing", "debias")
# Jitted once per static setting and shared by the tests: eager calls retrace (and recompile) the
# phase scans at every call, which costs far more than running them. beta is traced.
_jit_gradient = jax.jit(eqspike_gradient, static_argnames=_STATIC)
# The gradient alone: the event counts drop out of the program, which compiles faster.
_jit_grads = jax.jit(lambda *args, **kwargs: eqspike_gradient(*args, **kwargs)[0],
                     static_argnames=_STATIC)


@functools.partial(jax.jit, static_argnames=("dyn", "num_steps"))
def _jit_free_phase(params, x, dyn, key, num_steps):
  dyn = dataclasses.replace(dyn, t_free=num_steps)
  return eqspike.free_phase(_arch(params), params, x, dyn, key)


@functools.partial(jax.jit, static_argnames=("dyn",))
def _jit_run_phase(params, drives, state0, y, beta, dyn, key):
  return spiking.run_phase(_arch(params), params, drives, state0, y, beta, dyn, key)


# ================================================================================================
# Helpers.
# ================================================================================================


def _random_params(rng, sizes, w_scale=1.0, b_low=None, b_high=None, dtype=jnp.float32):
  """Weights ``w_scale * U(-1/sqrt(fan_in), 1/sqrt(fan_in))``; biases ``U(b_low, b_high)``.

  Biases default to the same range as the weights (the uniform init). Drawn with numpy: eager
  JAX would compile a kernel per op, which costs more than these tests.
  """
  params = []
  for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
    bound = 1.0 / np.sqrt(fan_in)
    lo = -bound if b_low is None else b_low
    hi = bound if b_high is None else b_high
    params.append(Layer(w=jnp.asarray(w_scale * rng.uniform(-bound, bound, (fan_in, fan_out)),
                                      dtype),
                        b=jnp.asarray(rng.uniform(lo, hi, (fan_out,)), dtype)))
  return tuple(params)


def _one_hot(labels, num_classes, dtype=jnp.float32):
  return jnp.asarray(np.eye(num_classes)[labels], dtype)


def _flat(tree):
  return np.concatenate([np.ravel(np.asarray(a, np.float64)) for a in jax.tree.leaves(tree)])


def _cosine(a, b):
  a, b = _flat(a), _flat(b)
  return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _norm(tree):
  return float(np.linalg.norm(_flat(tree)))


SMALL_SIZES = (6, 5, 3)
SMALL_BATCH = 4


@functools.lru_cache(maxsize=None)
def _small_problem():
  """Batch 4, layers 6-5-3, large weights (so that spikes flow back and forth)."""
  rng = np.random.default_rng(7)
  params = _random_params(rng, SMALL_SIZES, w_scale=2.0)
  x = jnp.asarray(rng.uniform(0, 1, (SMALL_BATCH, SMALL_SIZES[0])), jnp.float32)
  y = _one_hot(rng.integers(0, SMALL_SIZES[-1], SMALL_BATCH), SMALL_SIZES[-1])
  return params, x, y


def _states_from_trace(u0, du):
  """``u(t+1) = u0 + sum_{k <= t} du(k)``: the state after each step of a phase, ``[..., T, n]``."""
  return u0[..., None, :] + np.cumsum(np.asarray(du), axis=-2)


# ================================================================================================
# 1. Analytic: the sigma-delta encoder and one neuron.
# ================================================================================================


def test_encoder_spike_count_is_sum_of_rates_within_one():
  rng = np.random.default_rng(0)
  num_steps, n = 53, 9
  u = rng.uniform(0.0, 1.0, n).astype(np.float32)
  spikes = np.asarray(spiking.encode(jnp.asarray(u), num_steps, stochastic=False)[1])
  chex.assert_shape(spikes, (num_steps, n))
  assert set(np.unique(spikes)) <= {0.0, 1.0}
  # The accumulator starts at 0 and stays in [0, 1), so count = T u - e_T with e_T in [0, 1).
  deficit = num_steps * u - spikes.sum(0)
  assert np.all(deficit > -1e-4) and np.all(deficit < 1.0), deficit


def test_encoder_hand_computed_trains():
  # u = 0.4: e = 0.4, 0.8, 1.2 -> spike (0.2), 0.6, 1.0 -> spike (0.0), 0.4.
  # u = 1 spikes at every step, u = 0 never; u = 0.5: e = 0.5, 1.0 -> spike, ...
  u = jnp.array([0.4, 1.0, 0.0, 0.5])
  spikes = np.asarray(spiking.encode(u, 6, stochastic=False)[1])
  np.testing.assert_array_equal(spikes[:, 0], [0, 0, 1, 0, 1, 0])
  np.testing.assert_array_equal(spikes[:, 1], [1, 1, 1, 1, 1, 1])
  np.testing.assert_array_equal(spikes[:, 2], [0, 0, 0, 0, 0, 0])
  np.testing.assert_array_equal(spikes[:, 3], [0, 1, 0, 1, 0, 1])


def test_emit_tracks_a_time_varying_rate():
  """The invariant of reset by subtraction: ``e_t = sum_{k<=t} u_k - count_t``, in [0, 1)."""
  rng = np.random.default_rng(1)
  num_steps, n = 37, 6
  u_t = rng.uniform(0.0, 1.0, (num_steps, n)).astype(np.float32)
  e = jnp.zeros((n,))
  count = np.zeros(n)
  for t in range(num_steps):
    e, s = spiking.emit(e, jnp.asarray(u_t[t]), stochastic=False, key=None)
    assert set(np.unique(np.asarray(s))) <= {0.0, 1.0}
    count += np.asarray(s)
    np.testing.assert_allclose(np.asarray(e), u_t[:t + 1].sum(0) - count, atol=1e-5)
    assert np.all(np.asarray(e) >= 0.0) and np.all(np.asarray(e) < 1.0)
  deficit = u_t.sum(0) - count
  assert np.all(deficit > -1e-4) and np.all(deficit < 1.0), deficit


def test_neuron_step_matches_hand_recurrence(x64):
  del x64
  gamma, n = 0.3, 3
  # Currents beyond [0, 1] on purpose: the state must clip at both ends.
  currents = np.array([[0.5, 2.0, -1.0], [0.9, 2.0, 0.2], [-0.4, -3.0, 0.7], [0.1, 0.6, 1.4],
                       [0.7, 0.6, 0.3]])
  state = spiking.rest_state(n, jnp.float64)
  u, e = np.zeros(n), np.zeros(n)
  for current in currents:
    state, spikes = spiking.neuron_step(state, jnp.asarray(current), gamma, stochastic=False)
    u = np.clip((1 - gamma) * u + gamma * current, 0.0, 1.0)
    e = e + u
    s = (e >= 1.0).astype(float)
    e = e - s
    np.testing.assert_allclose(state.u, u, atol=1e-12)
    np.testing.assert_allclose(state.e, e, atol=1e-12)
    np.testing.assert_array_equal(spikes, s)
    np.testing.assert_array_equal(state.spikes, s)
  # First step by hand: u = clip(0.3 * [0.5, 2, -1]) = [0.15, 0.6, 0].
  state1, _ = spiking.neuron_step(spiking.rest_state(n, jnp.float64), jnp.asarray(currents[0]),
                                  gamma, stochastic=False)
  np.testing.assert_allclose(state1.u, [0.15, 0.6, 0.0], atol=1e-12)


def test_stochastic_spikes_are_bernoulli_of_the_state():
  u = jnp.array([0.0, 0.1, 0.5, 0.83, 1.0])
  num_steps = 4000
  spikes = np.asarray(spiking.encode(u, num_steps, stochastic=True, key=jax.random.PRNGKey(7))[1])
  chex.assert_shape(spikes, (num_steps, 5))
  assert set(np.unique(spikes)) <= {0.0, 1.0}
  # Binomial std of the mean is at most sqrt(0.25 / 4000) = 0.008; 0.04 is 5 std.
  np.testing.assert_allclose(spikes.mean(0), u, atol=0.04)
  assert spikes[:, 0].sum() == 0 and spikes[:, -1].sum() == num_steps
  # Successive spikes are independent draws, not a regular train: P(two in a row) ~ u^2.
  both = np.mean(spikes[1:, 2] * spikes[:-1, 2])
  assert abs(both - 0.25) < 0.04, both
  # The stochastic path leaves the sigma-delta accumulator alone.
  e0 = jnp.full((5,), 0.3)
  e1, _ = spiking.emit(e0, u, stochastic=True, key=jax.random.PRNGKey(0))
  np.testing.assert_array_equal(e1, e0)


# ================================================================================================
# 2. One network step against numpy.
# ================================================================================================


def _numpy_network_step(params, drive, u, e, spikes, y, beta, gamma):
  """``network_step`` written out: currents from the neighbours' spikes S(t), then emission."""
  w = [np.asarray(layer.w) for layer in params]
  b = [np.asarray(layer.b) for layer in params]
  n = len(u)
  new_u, new_e, new_s, du = [], [], [], []
  for l in range(n):
    current = (drive if l == 0 else spikes[l - 1] @ w[l]) + b[l]
    if l + 1 < n:
      current = current + spikes[l + 1] @ w[l + 1].T
    else:
      current = current + beta * (y - u[l])
    u_next = np.clip((1 - gamma) * u[l] + gamma * current, 0.0, 1.0)
    acc = e[l] + u_next
    s_next = (acc >= 1.0).astype(float)
    new_u.append(u_next)
    new_e.append(acc - s_next)
    new_s.append(s_next)
    du.append(u_next - u[l])
  return new_u, new_e, new_s, du


def test_network_step_matches_numpy(x64):
  """Layers 5-4-3-2 (two hidden layers, so one layer gets both forward and feedback spikes)."""
  del x64
  rng = np.random.default_rng(2)
  sizes = (5, 4, 3, 2)
  params = _random_params(rng, sizes, w_scale=3.0, dtype=jnp.float64)  # Large: clips happen.
  dyn = spiking.SpikingDynamics(gamma=0.4)
  y = np.array([0.0, 1.0])
  beta = 0.7
  # A non-rest start, so that the very first currents already use every path.
  u = [rng.uniform(0, 1, n) for n in sizes[1:]]
  e = [rng.uniform(0, 1, n) for n in sizes[1:]]
  s = [rng.integers(0, 2, n).astype(float) for n in sizes[1:]]
  state = tuple(spiking.NeuronState(u=jnp.asarray(a), e=jnp.asarray(b), spikes=jnp.asarray(c))
                for a, b, c in zip(u, e, s))
  x_spikes = rng.integers(0, 2, (3, sizes[0])).astype(float)
  for t in range(3):
    drive = x_spikes[t] @ np.asarray(params[0].w)
    state, obs = spiking.network_step(_arch(params), params, jnp.asarray(drive), state,
                                      jnp.asarray(y), beta, dyn, None)
    expected_u, expected_e, expected_s, expected_du = _numpy_network_step(
        params, drive, u, e, s, y, beta, dyn.gamma)
    for l in range(len(sizes) - 1):
      # The step records S(t) (received), S(t+1) (emitted), u(t) and du(t) = u(t+1) - u(t).
      np.testing.assert_array_equal(obs.received[l], s[l], err_msg=f"S(t), layer {l}, step {t}")
      np.testing.assert_array_equal(obs.emitted[l], expected_s[l])
      np.testing.assert_allclose(obs.du[l], expected_du[l], atol=1e-12)
      np.testing.assert_allclose(obs.u[l], u[l], atol=1e-12)
      np.testing.assert_allclose(state[l].u, expected_u[l], atol=1e-12)
      np.testing.assert_allclose(state[l].e, expected_e[l], atol=1e-12)
      np.testing.assert_array_equal(state[l].spikes, expected_s[l])
    u, e, s = expected_u, expected_e, expected_s
  # The test exercises what it claims: clipping and spikes happened somewhere.
  all_u = np.concatenate(u)
  assert np.any(all_u == 0.0) or np.any(all_u == 1.0)
  assert sum(a.sum() for a in s) > 0


# ================================================================================================
# 3. The time-averaged spiking state converges to the rate network's fixed point.
# ================================================================================================


def _window_errors(params, x, dyn, lengths, u_star):
  """Max error of the mean state over the second half of a free phase of each length.

  A phase of T steps from rest is the first T steps of a longer one (the dynamics are causal),
  so one phase of ``max(lengths)`` steps serves every length.
  """
  trace = _jit_free_phase(params, x[None], dyn, jax.random.PRNGKey(0),
                          num_steps=max(lengths)).trace
  u_t = [_states_from_trace(np.zeros(d.shape[-1]), d[0]) for d in trace.du]
  errors = []
  for t in lengths:
    means = [a[t // 2:t].mean(0) for a in u_t]
    errors.append(max(np.max(np.abs(m - np.asarray(s))) for m, s in zip(means, u_star)))
  return errors


def _rate_fixed_point(params, x):
  arch = _arch(params)
  s0 = layers.zero_states(arch, (), x.dtype)
  y0 = jnp.zeros((params[-1].w.shape[1],), x.dtype)
  s_star, residual = rate_ep.run_phase(arch, params, x @ params[0].w, s0, y0, None, 1000,
                                       network.hard_sigmoid)
  assert float(residual) < 1e-12  # The rate network has converged.
  return s_star


@pytest.mark.parametrize("input_mode", ["current", "spikes"])
def test_time_average_converges_to_rate_fixed_point(x64, input_mode):
  """Small weights and biases in [0.3, 0.7]: the fixed point is interior (no unit clips).

  Then the mean of ``u`` over a window obeys ``u = W S + b`` up to boundary terms, and the mean
  of the spikes equals the mean of ``u`` within 1 / window (sigma-delta), so the error falls like
  1 / T: measured 1.0e-2, 1.1e-4, 2.7e-5 (current) and 1.1e-2, 1.9e-4, 3.2e-5 (spikes) at
  T = 100, 400, 1600 (the first window still holds the transient from rest). The end state
  itself does not converge: it jitters by O(gamma W).
  """
  del x64
  rng = np.random.default_rng(3)
  sizes = (7, 5, 3)
  params = _random_params(rng, sizes, w_scale=0.5, b_low=0.3, b_high=0.7, dtype=jnp.float64)
  x = jnp.asarray(rng.uniform(0, 1, sizes[0]))
  u_star = _rate_fixed_point(params, x)
  all_u = np.concatenate([np.asarray(s) for s in u_star])
  assert np.all((all_u > 0.05) & (all_u < 0.95)), all_u  # The premise: interior fixed point.
  dyn = spiking.SpikingDynamics(gamma=0.1, input_mode=input_mode)
  errors = _window_errors(params, x, dyn, (100, 400, 1600), u_star)
  assert errors[1] < errors[0] and errors[2] < errors[1], errors
  assert errors[2] < 0.25 * errors[0], errors
  assert errors[2] < 3e-4, errors


def test_saturated_units_leave_an_order_gamma_bias(x64):
  """With units clipped at 0, the spikes' jitter pushes the mean state off the fixed point.

  A unit whose mean input is negative still gets positive kicks from single spikes, and the clip
  keeps the negative ones: its mean state is O(gamma) above 0 however long the phase (measured
  6.3e-4 at gamma 0.1 and 3.2e-4 at 0.05 over steps 3200-6400 here; 6e-3 to 1.4e-2 at gamma 0.1
  on networks with units closer to the clip). This bounds what the rate approximation can reach
  with a given gamma.
  """
  del x64
  rng = np.random.default_rng(4)
  sizes = (7, 5, 3)
  params = _random_params(rng, sizes, w_scale=1.0, dtype=jnp.float64)
  x = jnp.asarray(rng.uniform(0, 1, sizes[0]))
  u_star = _rate_fixed_point(params, x)
  assert np.any(np.concatenate([np.asarray(s) for s in u_star]) == 0.0)  # Some units clip.
  errors = {}
  for gamma in (0.1, 0.05):
    dyn = spiking.SpikingDynamics(gamma=gamma, input_mode="current")
    errors[gamma] = _window_errors(params, x, dyn, (6400,), u_star)[0]
  assert 0.3 * errors[0.1] < errors[0.05] < 0.7 * errors[0.1], errors  # Halves with gamma.
  assert errors[0.1] < 0.03, errors


# ================================================================================================
# 4. The spike-driven update against rate EP and the true gradient, on a trained network.
# ================================================================================================

TRAINED = pytest.mark.xdist_group("eqspike_test_trained")
TRAINED_SIZES = (20, 16, 4)
EVAL_BATCH = 2000  # Noise of the spiking estimate falls like 1 / sqrt(batch); steps are cheap.


def _synthetic_task(rng, prototypes, n):
  """Four noisy prototypes in [0, 1]^20: a task a 20-16-4 network learns in 100 steps."""
  labels = rng.integers(0, TRAINED_SIZES[-1], n)
  x = np.clip(prototypes[labels] + 0.3 * rng.standard_normal((n, TRAINED_SIZES[0])), 0.0, 1.0)
  return jnp.asarray(x, jnp.float32), _one_hot(labels, TRAINED_SIZES[-1])


@functools.lru_cache(maxsize=None)
def _trained_problem(seed=0):
  """A 20-16-4 rate network (hard sigmoid) trained by symmetric rate EP, and a test batch.

  100 Adam steps of batch 25: the loss falls from 0.46 to 0.27 and the test accuracy from chance
  (0.25) to 0.81 (seed 0; 0.80-0.92 on other seeds), so the weights carry structure while the
  gradient is far from zero (a network trained to zero loss has nothing left to estimate).
  """
  rng = np.random.default_rng(seed)
  prototypes = rng.uniform(size=(TRAINED_SIZES[-1], TRAINED_SIZES[0]))
  x_train, y_train = _synthetic_task(rng, prototypes, 2500)
  x, y = _synthetic_task(rng, prototypes, EVAL_BATCH)
  params = _random_params(rng, TRAINED_SIZES)
  dyn = rate_ep.Dynamics(activation="hard_sigmoid", t_free=30, t_nudge=10)
  optimizer = optax.adam(1e-3)
  nudging = ep_core.Nudging("symmetric", 0.5)
  update = ep_core.accumulated_update(
      functools.partial(rate_ep.estimate, _arch(params), dyn, nudging), nudging, optimizer)

  @jax.jit
  def fit(params):
    def body(carry, batch):
      params, opt_state, metrics = update(*carry, *batch, jax.random.PRNGKey(0))
      return (params, opt_state), metrics["loss"]

    batches = (x_train.reshape(100, 25, -1), y_train.reshape(100, 25, -1))
    (params, _), losses = jax.lax.scan(body, (params, optimizer.init(params)), batches)
    return params, losses

  params, losses = fit(params)
  accuracy = np.mean(np.argmax(rate_ep.predict(_arch(params), params, x, dyn=dyn), -1)
                     == np.argmax(y, -1))
  return params, x, y, np.asarray(losses), float(accuracy)


# Long enough that the rate phases settle (residual < 1e-6; the hard sigmoid converges fast).
RATE_LONG = rate_ep.Dynamics(activation="hard_sigmoid", t_free=100, t_nudge=100)
BETA = 0.2


@functools.lru_cache(maxsize=None)
def _reference_gradients():
  """True gradient (``jax.grad`` through the converged free phase) and rate EP estimates."""
  params, x, y, _, _ = _trained_problem()

  arch = _arch(params)

  def loss(params):
    s, _, _ = rate_ep.free_phase(arch, params, x, RATE_LONG)
    return jnp.mean(network.cost(s[-1], y))

  true = jax.jit(jax.grad(loss))(params)

  @functools.partial(jax.jit, static_argnames="mode")
  def rate_fn(params, mode):
    nudging = ep_core.Nudging(mode, BETA)
    estimate = functools.partial(rate_ep.estimate, arch, RATE_LONG, nudging)
    return ep_core.estimate_gradient(estimate, nudging, params, x, y,
                                     nudging.betas(None, x.dtype), None)[0]

  rate = {mode: rate_fn(params, mode) for mode in ("symmetric", "one_sided")}
  return true, rate


@TRAINED
def test_trained_problem_is_trained():
  params, x, _, losses, accuracy = _trained_problem()
  assert losses[-10:].mean() < 0.7 * losses[:10].mean(), losses  # Measured 0.46 -> 0.27.
  assert accuracy > 0.6, accuracy  # Chance is 0.25.
  _, residual, _ = jax.jit(rate_ep.free_phase, static_argnums=(0, 3))(_arch(params), params, x,
                                                                      RATE_LONG)
  assert float(jnp.max(residual)) < 1e-6


@TRAINED
@pytest.mark.parametrize("nudging", ["symmetric", "one_sided"])
def test_rate_ep_matches_true_gradient_on_trained_network(nudging):
  """The rate link of the chain spiking ~ rate EP ~ true gradient.

  Measured on 5 seeds of the task: 0.9875-0.9998 (symmetric; 0.9875 is seed 0, used here) and
  0.997-0.999 (one-sided). The O(beta) bias of finite beta through the kinks of the hard sigmoid
  is what keeps it below 1; rate_ep_test.py checks the beta -> 0 limit.
  """
  true, rate = _reference_gradients()
  assert _cosine(rate[nudging], true) >= 0.98, _cosine(rate[nudging], true)


# The nudged phase is short on purpose: gamma * t_nudge = 3 time constants. The rule's sum over
# the phase carries a drift that grows linearly with t_nudge (test_drift_is_linear_in_t_nudge),
# so the t_free 200 / t_nudge 100 of a first guess gives cosines of 0.15-0.8, not better ones.
SPIKE_DYN = dict(gamma=0.2, t_free=100, t_nudge=15)


def _spike_gradient(input_mode, nudging, pairing="same_step", debias=False, **overrides):
  params, x, y, _, _ = _trained_problem()
  dyn = spiking.SpikingDynamics(input_mode=input_mode, **{**SPIKE_DYN, **overrides})
  return _jit_grads(params, x, y, jax.random.PRNGKey(0), dyn=dyn, beta=BETA, nudging=nudging,
                    free_contrast=True, pairing=pairing, debias=debias)


@TRAINED
@pytest.mark.parametrize("input_mode", ["current", "spikes"])
def test_symmetric_spike_rule_matches_rate_ep_and_true_gradient(input_mode):
  """Measured on 5 seeds of the task (t_nudge 15, batch 2000): cosine with rate EP 0.934-0.986
  (current input; seed 0, used here: 0.942) and 0.913-0.973 (spiking input; seed 0: 0.944);
  with jax.grad 0.942-0.987 and 0.927-0.975."""
  true, rate = _reference_gradients()
  grads = _spike_gradient(input_mode, "symmetric")
  assert _cosine(grads, rate["symmetric"]) >= 0.9, _cosine(grads, rate["symmetric"])
  assert _cosine(grads, true) >= 0.9, _cosine(grads, true)
  # Not only the direction: the scale agrees too. Measured 0.84-0.90: the spiking estimate is
  # ~12 % short (a 15-step phase has not quite settled; the drift below adds to it).
  assert 0.7 < _norm(grads) / _norm(rate["symmetric"]) < 1.4


@TRAINED
@pytest.mark.parametrize("input_mode,bound", [("current", 0.85)])
def test_one_sided_spike_rule_with_free_contrast_matches_rate_ep(input_mode, bound):
  """One-sided nudging with the free-phase contrast is noisier than symmetric nudging.

  Its contrast pairs two *different* windows (the nudged phase and the free-phase tail), whose
  spike coincidences differ by a beta-independent amount (test_free_contrast_makes_the_expected_
  sum_vanish), so the estimate carries noise ~ 1 / (beta sqrt(batch)). Measured against
  one-sided rate EP on 5 seeds of the task: 0.898-0.963 with current input (seed 0, used here:
  0.898) and only 0.67-0.86 with spiking input, where the input layer's term adds the input
  trains' coincidences (not tested: no bar worth asserting). The bar of 0.9 is not met in
  general; 0.85 sits under the measured minimum.
  """
  _, rate = _reference_gradients()
  grads = _spike_gradient(input_mode, "one_sided")
  assert _cosine(grads, rate["one_sided"]) >= bound, _cosine(grads, rate["one_sided"])


# The rules under test beside the same-step rule above, measured on seeds 0-4 of the task with
# spiking input (cosine: min, mean, std over the 5 seeds), and the bounds set at about mean - 3 std:
#   next-step pairing (shipped), beta 0.2, t_nudge 15: rate EP 0.901, 0.923, 0.015; jax.grad 0.897,
#     0.923, 0.016 -> bound 0.87;
#   same-step + debias, beta 0.2, t_nudge 15: rate EP 0.960, 0.969, 0.008; jax.grad 0.967, 0.972,
#     0.006 -> bound 0.94.
SEEDS = (0, 1, 2)


def _true_gradient(seed):
  params, x, y, _, _ = _trained_problem(seed)
  arch = _arch(params)

  def loss(params):
    s, _, _ = rate_ep.free_phase(arch, params, x, RATE_LONG)
    return jnp.mean(network.cost(s[-1], y))

  return jax.jit(jax.grad(loss))(params)


def _rate_symmetric(seed, beta):
  params, x, y, _, _ = _trained_problem(seed)
  nudging = ep_core.Nudging("symmetric", beta)
  estimate = functools.partial(rate_ep.estimate, _arch(params), RATE_LONG, nudging)
  return jax.jit(lambda p: ep_core.estimate_gradient(
      estimate, nudging, p, x, y, nudging.betas(None, x.dtype), None)[0])(params)


@TRAINED
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("pairing,debias,bound", [("next_step", False, 0.87),
                                                  ("same_step", True, 0.94)],
                         ids=["next_step", "same_step_debias"])
def test_shipped_and_debiased_rules_match_rate_ep_and_true_gradient(seed, pairing, debias, bound):
  params, x, y, _, _ = _trained_problem(seed)
  dyn = spiking.SpikingDynamics(input_mode="spikes", **SPIKE_DYN)
  grads = _jit_grads(params, x, y, jax.random.PRNGKey(0), dyn=dyn, beta=BETA,
                     nudging="symmetric", free_contrast=True, pairing=pairing, debias=debias)
  assert _cosine(grads, _rate_symmetric(seed, BETA)) >= bound
  assert _cosine(grads, _true_gradient(seed)) >= bound


@TRAINED
@pytest.mark.parametrize("seed", SEEDS)
def test_shipped_configuration_tracks_the_true_gradient(seed):
  """configs/mnist_eqspike.py's rule and phases (gamma 0.2, t_free 60, t_nudge 20, beta 0.5,
  symmetric, next-step pairing, spiking input) on the 20-16-4 task.

  Measured on seeds 0-4: cosine with jax.grad 0.760, 0.792, 0.038 (min, mean, std) -> bound 0.68;
  same-step + debias at the same settings 0.844, 0.882, 0.024. Rate EP at beta 0.5 is not the
  reference here: its converged symmetric estimate is itself far from the gradient on this
  hard-sigmoid network (cosine 0.03-0.85 over the seeds, against 0.99 at beta 0.2), because the
  nudge pushes output units into the clip, while the 20-step spiking phase is not driven as far.
  """
  params, x, y, _, _ = _trained_problem(seed)
  dyn = spiking.SpikingDynamics(gamma=0.2, t_free=60, t_nudge=20, input_mode="spikes")
  grads = _jit_grads(params, x, y, jax.random.PRNGKey(0), dyn=dyn, beta=0.5,
                     nudging="symmetric", free_contrast=True, pairing="next_step", debias=False)
  assert _cosine(grads, _true_gradient(seed)) >= 0.68


@pytest.mark.slow
def test_spike_count_readout_is_what_loss_and_accuracy_measure():
  """With readout='spike_count' the training loss is the cost of the readout, as the
  evaluation's is (it was the cost of u_o, so the two losses measured different things)."""
  params, x, y = _small_problem()
  model = eqspike.Model(arch=_arch(params), dyn=DETERMINISTIC, rule=spike_rule.Rule(),
                        nudging=ep_core.Nudging("symmetric", 0.3),
                        readout=eqspike.Readout("spike_count", 4))
  _, metrics = jax.jit(model.estimate)(params, x, y, model.nudging.betas(None), None)
  free = eqspike.free_phase(model.arch, params, x, model.dyn, None)
  rates = jnp.mean(free.trace.emitted[-1][:, -4:], axis=1)
  np.testing.assert_allclose(metrics["loss"], jnp.mean(network.cost(rates, y)), rtol=1e-6)
  assert abs(float(metrics["loss"] - jnp.mean(network.cost(free.state[-1].u, y)))) > 1e-3
  np.testing.assert_allclose(model.predict(params, x, None), rates)
  # The evaluation's loss on the same batch is the same number.
  algorithm = ep_core.Algorithm(init_params=None, update=None, predict=model.predict)
  split = data_lib.Split(images=np.asarray(x), labels=np.asarray(jnp.argmax(y, -1), np.int32))
  evaluated = train.evaluate_split(train.make_evaluate(algorithm, 3), params,
                                   train.eval_batches(split, SMALL_BATCH), jax.random.PRNGKey(0))
  np.testing.assert_allclose(evaluated["loss"], metrics["loss"], rtol=1e-5)


@functools.partial(jax.jit, static_argnames=("dyn", "lengths"))
def _symmetric_estimates_by_length(params, x, y, beta, *, dyn, lengths):
  """The symmetric estimate of ``eqspike_gradient`` for each ``t_nudge`` in ``lengths``.

  A nudged phase of T steps is the first T steps of a longer one (the dynamics and the input
  encoder are causal), so one pair of phases of ``max(lengths)`` steps serves every length.
  Deterministic spikes only (no keys).
  """
  longest = max(lengths)
  arch = _arch(params)
  _, s_in = spiking.input_trains(x, dyn.t_free + longest, dyn, None)
  drives = spiking.drives_of(arch, params, s_in, dyn)
  state0 = spiking.batched_rest_state(arch, x.shape[0], x.dtype)
  s_free, _ = spiking.batched_phase(arch, params, drives[:, :dyn.t_free], state0, y, None, dyn,
                                    None)
  nudged = {sign: spiking.batched_phase(arch, params, drives[:, dyn.t_free:], s_free, y,
                                        sign * beta, dyn, None)[1] for sign in (1, -1)}
  rule = spike_rule.Rule(pairing="same_step", gamma=dyn.gamma)
  estimates = []
  for t in lengths:
    head = lambda tree, t=t: jax.tree.map(lambda a: a[:, :t], tree)
    sums = rule.sums(arch, params, s_in[:, dyn.t_free:dyn.t_free + t], head(nudged[1]), None,
                     head(nudged[-1]))
    estimates.append(jax.tree.map(lambda a: -a / (2 * beta * x.shape[0]), sums))
  return estimates


@TRAINED
def test_drift_is_linear_in_t_nudge():
  """Why long nudged phases hurt: the summed rule is the EP update plus t_nudge times a drift.

  ``S_pre(t)`` and ``du_post(t)`` are correlated at equilibrium (the pitfall of section 3); the
  correlation depends on the state, so it differs between the +beta and -beta phases by O(beta)
  at *every* step. Symmetric nudging cancels its beta-independent part only, and what is left
  grows like t_nudge while the EP signal stops growing once the phase has settled (3 / gamma
  steps). Measured on current input: cosine with rate EP 0.942, 0.871, 0.670 at t_nudge 15, 30,
  60, the norm ratio 0.88, 1.18, 1.66; removing the straight line through the estimates at 30
  and 60 recovers the rate EP gradient at every length (cosine 0.968, 0.972, 0.972). The drift
  is 0.34 of the signal's norm at t_nudge 15 and 1.3 at 60 on this network, and grows with the
  weights (on an untrained 20-16-4 network its relative size halves when W_1 is halved).
  """
  params, x, y, _, _ = _trained_problem()
  _, rate = _reference_gradients()
  dyn = spiking.SpikingDynamics(input_mode="current", **SPIKE_DYN)
  lengths = (15, 30, 60)
  estimates = _symmetric_estimates_by_length(params, x, y, BETA, dyn=dyn, lengths=lengths)
  # The helper is eqspike_gradient's computation.
  chex.assert_trees_all_close(estimates[0], _spike_gradient("current", "symmetric"), rtol=1e-4,
                              atol=1e-6)
  flat = dict(zip(lengths, (_flat(e) for e in estimates)))
  drift = (flat[60] - flat[30]) / 30
  target = _flat(rate["symmetric"])
  for t_nudge in lengths:
    corrected = flat[t_nudge] - t_nudge * drift
    assert _cosine(corrected, target) >= 0.95, (t_nudge, _cosine(corrected, target))


# ================================================================================================
# 5. The pitfall: without a contrast, the summed rule does not vanish as beta -> 0.
# ================================================================================================

PITFALL_SIZES = (20, 16, 4)
PITFALL_CHUNKS, PITFALL_CHUNK = 16, 64  # 1024 examples, as 16 batches of 64.
PITFALL_BETAS = (0.1, 0.01, 0.001)
# name: (nudging, free_contrast, phases in the denominator of eqspike_gradient).
PITFALL_VARIANTS = {"raw": ("one_sided", False, 1.0), "contrast": ("one_sided", True, 1.0),
                    "symmetric": ("symmetric", True, 2.0)}


@functools.partial(jax.jit, static_argnames=("dyn",))
def _summed_rule(params, x, y, betas, *, dyn):
  """The rule summed over the nudged phase(s), per example, for each beta, variant and chunk.

  ``eqspike_gradient`` returns ``-sums / (k beta B)``; this undoes the scaling, so the result is
  what the synapses accumulate before the division by beta. Leaves ``[beta, chunk, ...]``.
  """

  def one_chunk(beta, x, y):
    out = {}
    for name, (nudging, free_contrast, k) in PITFALL_VARIANTS.items():
      grads, _ = eqspike_gradient(params, x, y, jax.random.PRNGKey(0), dyn=dyn,
                                          beta=beta, nudging=nudging, free_contrast=free_contrast)
      out[name] = jax.tree.map(lambda g, k=k: -k * beta * g, grads)
    return out

  shape = (PITFALL_CHUNKS, PITFALL_CHUNK)
  chunks = jax.vmap(one_chunk, in_axes=(None, 0, 0))
  return jax.vmap(chunks, in_axes=(0, None, None))(
      betas, x.reshape(shape + x.shape[1:]), y.reshape(shape + y.shape[1:]))


@functools.lru_cache(maxsize=None)
def _pitfall_norms(input_mode, weight_scale=1.0):
  """Per variant: ``(one chunk, whole batch)`` norms of the per-example sum, one per beta.

  One chunk: the mean over chunks of the norm of a 64-example average; whole batch: the norm of
  the 1024-example average. A bias is the same in both; zero-mean noise shrinks 4x.
  """
  rng = np.random.default_rng(5)
  params = _random_params(rng, PITFALL_SIZES, w_scale=weight_scale)
  n = PITFALL_CHUNKS * PITFALL_CHUNK
  x = jnp.asarray(rng.uniform(0, 1, (n, PITFALL_SIZES[0])), jnp.float32)
  y = _one_hot(rng.integers(0, PITFALL_SIZES[-1], n), PITFALL_SIZES[-1])
  dyn = spiking.SpikingDynamics(gamma=0.2, t_free=100, t_nudge=20, input_mode=input_mode)
  sums = _summed_rule(params, x, y, jnp.asarray(PITFALL_BETAS, jnp.float32), dyn=dyn)
  norms = {}
  for name, tree in sums.items():
    chunk = np.array([[_norm(jax.tree.map(lambda a: a[i, c], tree))
                       for c in range(PITFALL_CHUNKS)] for i in range(len(PITFALL_BETAS))])
    whole = np.array([_norm(jax.tree.map(lambda a: a[i].mean(0), tree))
                      for i in range(len(PITFALL_BETAS))])
    norms[name] = (chunk.mean(1), whole)
  return norms


@pytest.mark.slow
@pytest.mark.parametrize("input_mode", ["spikes"])
def test_summed_rule_without_contrast_does_not_vanish(input_mode):
  """One-sided, no contrast: the sum stays O(1) as beta -> 0, so sum / beta blows up.

  Measured per example on spiking input: 1.28, 1.26, 1.25 at beta 0.1, 0.01, 0.001 (0.57, 0.53,
  0.52 on current input); it is a bias, not noise (1.27 on 64 examples, 1.25 on 1024), and
  doubling the weights doubles it (x1.96; x1.5 on current input).
  """
  per_chunk, whole = _pitfall_norms(input_mode)["raw"]
  assert np.all(whole > 0.1), whole
  assert 0.7 < whole[-1] / whole[0] < 1.4, whole  # Does not scale with beta ...
  assert np.all(whole > 0.8 * per_chunk), (whole, per_chunk)  # ... nor average out.
  # The gradient estimate sum / beta grows like 1 / beta (x100 from beta 0.1 to 0.001).
  assert whole[-1] / PITFALL_BETAS[-1] > 50 * whole[0] / PITFALL_BETAS[0]
  # It is W-dependent: doubling the weights makes it larger.
  doubled = _pitfall_norms(input_mode, weight_scale=2.0)["raw"][1]
  assert np.all(doubled > 1.5 * whole), (doubled, whole)


@pytest.mark.parametrize("input_mode", ["spikes"])
def test_symmetric_summed_rule_vanishes_with_beta(input_mode):
  """Symmetric: measured 0.116, 0.020, 0.0049 per example (spikes; current 0.108, 0.012, 0.002)
  against 1.25 without a contrast. Not linear in beta: with deterministic spikes a small nudge
  moves a few spikes by a step, and each moved spike is an O(gamma W) jump."""
  norms = _pitfall_norms(input_mode)
  raw, sym = norms["raw"][1], norms["symmetric"][1]
  assert sym[0] > sym[1] > sym[2], sym
  assert sym[2] < 0.05 * raw[2], (sym, raw)


@pytest.mark.slow
@pytest.mark.parametrize("input_mode", ["spikes"])
def test_free_contrast_makes_the_expected_sum_vanish(input_mode):
  """With the free-phase contrast the beta -> 0 limit is zero-mean noise, not a bias.

  The two windows (nudged phase, free tail) have different spike coincidences, so one batch of
  64 keeps a residual (measured 0.29 per example on spiking input, 0.056 on current input,
  whatever the beta <= 0.01), but it averages out: 16 times more examples shrink it 3.8x (to
  0.077; 1 / sqrt would be 4x), while the uncontrasted sum stays at 1.25. The one-sided estimate
  is therefore unbiased as beta -> 0, but its noise grows like 1 / (beta sqrt(batch)).
  """
  norms = _pitfall_norms(input_mode)
  raw_chunk, raw_whole = norms["raw"][0][-1], norms["raw"][1][-1]
  con_chunk, con_whole = norms["contrast"][0][-1], norms["contrast"][1][-1]
  assert con_chunk < 0.35 * raw_chunk, (con_chunk, raw_chunk)
  assert con_whole < 0.4 * con_chunk, (con_whole, con_chunk)  # 0.25 for pure noise.
  assert con_whole < 0.1 * raw_whole, (con_whole, raw_whole)


def test_symmetric_gradient_is_exactly_zero_without_nudge():
  """Both phases continue the same input trains and state: with a nudge below float32
  resolution (1e-30 against currents of order 1) they are identical, and so is their rule."""
  params, x, y = _small_problem()
  grads, metrics = _jit_gradient(params, x, y, jax.random.PRNGKey(1), dyn=DETERMINISTIC,
                                 beta=1e-30, nudging="symmetric", free_contrast=True)
  assert float(metrics["events"].nudged.spikes[1]) > 0  # The phases did spike.
  for g in jax.tree.leaves(grads):
    np.testing.assert_array_equal(g, np.zeros_like(g))


def test_free_contrast_refuses_a_free_phase_shorter_than_the_nudged_one():
  """The contrast is gathered over the last t_nudge free steps, so t_free < t_nudge has no
  contrast window: the config must be refused before any work, naming the fields."""
  from eqspike_jax import config_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.base_config("eqspike")
  config.t_free, config.t_nudge, config.nudging = 5, 7, "one_sided"
  with pytest.raises(ValueError, match="t_free"):
    config_lib.validate(config)
  config.eqspike.free_contrast = False  # No contrast window needed: accepted.
  config_lib.validate(config)


# ================================================================================================
# 6. Event counts on a hand-built example.
# ================================================================================================

EVENT_SIZES = (3, 4, 5, 2)  # Input, two hidden, output.


def _hand_built_phase():
  """Batch 2, 3 steps. Example 1 is almost silent, so the batch mean is checked too."""
  s_in = np.zeros((2, 3, 3))
  s_in[0, 0] = [1, 0, 1]
  s_in[0, 2] = [0, 1, 0]
  s_in[1, 1] = [1, 1, 1]
  h1 = np.zeros((2, 3, 4))
  h1[0, 1] = [1, 1, 0, 0]
  h1[0, 2] = [0, 0, 0, 1]
  h2 = np.zeros((2, 3, 5))
  h2[0, 0] = [1, 0, 0, 0, 0]
  h2[0, 1] = [1, 0, 0, 0, 0]
  out = np.zeros((2, 3, 2))
  out[0, 1] = [1, 1]
  out[0, 2] = [0, 1]
  out[1, 0] = [1, 0]
  spikes = tuple(jnp.asarray(a, jnp.float32) for a in (h1, h2, out))
  return layers.dense_stack(EVENT_SIZES), jnp.asarray(s_in, jnp.float32), spikes


def test_phase_events_by_hand():
  arch, s_in, spikes = _hand_built_phase()
  events = events_lib.phase_events(arch, s_in, spikes, written_by=spikes)
  # Spikes per example: input 3 and 3, h1 3 and 0, h2 2 and 0, output 3 and 1.
  assert [float(c) for c in events.spikes] == [3.0, 1.5, 1.0, 2.0]
  # Fan-out: input -> h1 only: 4. h1 -> h2 only (the input is clamped, it takes no feedback): 5.
  # h2 -> output and back to h1: 2 + 4 = 6. Output -> back to h2: 5.
  # Example 0: 3*4 + 3*5 + 2*6 + 3*5 = 54. Example 1: 3*4 + 1*5 = 17. Mean 35.5.
  assert float(events.synaptic_ops) == 35.5
  # Every free neuron integrates at every step: 3 * (4 + 5 + 2).
  assert float(events.neuron_updates) == 33.0
  # Writes per step: input synapses on input spikes (x4 targets); otherwise the union of the
  # spiking pre rows and spiking post columns, pre * n_post + post * n_pre - pre * post.
  # Example 0, W0: (2 + 0 + 1) * 4 = 12.
  #   W1 (h1 4 -> h2 5): t0 pre 0 post 1: 4; t1 pre 2 post 1: 10 + 4 - 2 = 12; t2 pre 1 post 0: 5.
  #   W2 (h2 5 -> out 2): t0 pre 1 post 0: 2; t1 pre 1 post 2: 2 + 10 - 2 = 10; t2 post 1: 5.
  #   Total 12 + 21 + 17 = 50.
  # Example 1: W0 3 * 4 = 12; W2 t0 post 1: 5. Total 17. Mean 33.5.
  assert float(events.synaptic_updates) == 33.5
  free = events_lib.phase_events(arch, s_in, spikes)  # A phase that does not learn.
  assert float(free.synaptic_updates) == 0.0
  assert float(free.synaptic_ops) == 35.5
  # The writes follow the spikes the rule pairs, the deliveries the spikes emitted: pairing
  # other spikes (here none) changes only the writes, to the input layer's.
  silent = tuple(jnp.zeros_like(a) for a in spikes)
  other = events_lib.phase_events(arch, s_in, spikes, written_by=silent)
  assert float(other.synaptic_ops) == 35.5 and float(other.synaptic_updates) == 12.0
  # Flattened at the logging boundary and read back by name: the same numbers.
  step = events_lib.StepEvents(free=free, nudged=events)
  from eqspike_jax import metrics as metrics_lib  # pylint: disable=g-import-not-at-top
  flat = metrics_lib.flatten({"events": step})
  assert flat["events/nudged/spikes/layer3"] == events.spikes[3]
  assert flat["events/free/synaptic_ops"] == free.synaptic_ops
  chex.assert_trees_all_equal(events_lib.StepEvents.from_flat(flat, "events/"), step)


def test_phase_events_against_brute_force_counts():
  """Random spikes; every synapse write and delivery counted one by one."""
  rng = np.random.default_rng(6)
  batch, steps = 3, 7
  arch = layers.dense_stack(EVENT_SIZES)
  spikes = [rng.integers(0, 2, (batch, steps, n)).astype(np.float32) for n in EVENT_SIZES]
  free = tuple(jnp.asarray(a) for a in spikes[1:])
  events = events_lib.phase_events(arch, jnp.asarray(spikes[0]), free, written_by=free)
  last = len(EVENT_SIZES) - 1
  sops = writes = 0.0
  for b in range(batch):
    for t in range(steps):
      for l, s in enumerate(spikes):
        for i in np.flatnonzero(s[b, t]):
          del i
          targets = 0
          if l < last:
            targets += EVENT_SIZES[l + 1]
          if l >= 2:  # Feedback to a free layer.
            targets += EVENT_SIZES[l - 1]
          sops += targets
      for l in range(last):
        pre, post = spikes[l][b, t] > 0, spikes[l + 1][b, t] > 0
        written = np.logical_or.outer(pre, post) if l > 0 else np.logical_or.outer(
            pre, np.zeros_like(post))
        writes += written.sum()
  np.testing.assert_allclose(events.synaptic_ops, sops / batch, rtol=1e-6)
  np.testing.assert_allclose(events.synaptic_updates, writes / batch, rtol=1e-6)
  for l, s in enumerate(spikes):
    np.testing.assert_allclose(events.spikes[l], s.sum() / batch, rtol=1e-6)
  assert float(events.neuron_updates) == steps * sum(EVENT_SIZES[1:])


# ================================================================================================
# 7-8. Randomness, jit, vmap.
# ================================================================================================

PHASE_STEPS = 9  # != batch 4, != widths 6, 5, 3.


@functools.partial(jax.jit, static_argnames=("num_steps", "dyn"))
def _jit_input_drives(params, x, num_steps, dyn, key):
  _, s_in = spiking.input_trains(x, num_steps, dyn, key)
  return s_in, spiking.drives_of(_arch(params), params, s_in, dyn)


@functools.partial(jax.jit, static_argnames=("dyn", "start"))
def _jit_batched_phase(params, drives, state0, y, beta, dyn, key, start=0):
  return spiking.batched_phase(_arch(params), params, drives, state0, y, beta, dyn, key, start)


def _spikes_of_a_phase(dyn, key):
  """Input trains and every layer's spikes of a nudged phase from rest, ``[B, T, n]`` each."""
  params, x, y = _small_problem()
  key_in, key_net = jax.random.split(key)
  s_in, drives = _jit_input_drives(params, x, PHASE_STEPS, dyn, key_in)
  state0 = spiking.batched_rest_state(_arch(params), SMALL_BATCH)
  state, trace = _jit_batched_phase(params, drives, state0, y, 0.4, dyn, key_net)
  return [np.asarray(s_in)] + [np.asarray(s) for s in trace.emitted], state


@pytest.mark.slow
def test_stochastic_spikes_same_key_same_trace():
  first, state_a = _spikes_of_a_phase(STOCHASTIC, jax.random.PRNGKey(11))
  second, state_b = _spikes_of_a_phase(STOCHASTIC, jax.random.PRNGKey(11))
  other, _ = _spikes_of_a_phase(STOCHASTIC, jax.random.PRNGKey(12))
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a, b)
  chex.assert_trees_all_equal(state_a, state_b)
  assert np.any(first[0] != other[0])  # The input trains draw from the key ...
  assert any(np.any(a != c) for a, c in zip(first[1:], other[1:]))  # ... and so do the neurons.


def test_deterministic_spikes_do_not_depend_on_the_key():
  first, state_a = _spikes_of_a_phase(DETERMINISTIC, jax.random.PRNGKey(11))
  second, state_b = _spikes_of_a_phase(DETERMINISTIC, jax.random.PRNGKey(12))
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a, b)
  chex.assert_trees_all_equal(state_a, state_b)
  assert all(a.sum() > 0 for a in first)  # Every layer spiked.


@pytest.mark.slow
def test_jit_equals_no_jit():
  """Symmetric nudging (one case: the eager run costs seconds of op-by-op compilation)."""
  params, x, y = _small_problem()
  kwargs = dict(dyn=DETERMINISTIC, beta=0.3, nudging="symmetric", free_contrast=True)
  eager, eager_metrics = eqspike_gradient(params, x, y, jax.random.PRNGKey(0), **kwargs)
  jitted, jitted_metrics = _jit_gradient(params, x, y, jax.random.PRNGKey(0), **kwargs)
  assert _norm(eager) > 0
  chex.assert_trees_all_close(jitted, eager, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(jitted_metrics, eager_metrics, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dyn", [DETERMINISTIC, STOCHASTIC], ids=["deterministic", "stochastic"])
def test_batched_phase_equals_loop_over_examples(dyn):
  params, x, y = _small_problem()
  key_in, key_net = jax.random.split(jax.random.PRNGKey(5))
  _, drives = _jit_input_drives(params, x, PHASE_STEPS, dyn, key_in)
  chex.assert_shape(drives, (SMALL_BATCH, PHASE_STEPS, SMALL_SIZES[1]))
  state0 = spiking.batched_rest_state(_arch(params), SMALL_BATCH)
  beta = 0.4
  state, trace = _jit_batched_phase(params, drives, state0, y, beta, dyn, key_net)
  # batched_phase gives example i the i-th key of split(key, batch).
  keys = jax.random.split(key_net, SMALL_BATCH) if dyn.stochastic else [None] * SMALL_BATCH
  for i in range(SMALL_BATCH):
    s0_i = jax.tree.map(lambda a: a[i], state0)
    state_i, trace_i = _jit_run_phase(params, drives[i], s0_i, y[i], beta, dyn, keys[i])
    chex.assert_shape(trace_i.du[0], (PHASE_STEPS, SMALL_SIZES[1]))
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[i], state), state_i, atol=1e-6)
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[i], trace), trace_i, atol=1e-6)
  assert sum(float(jnp.sum(s)) for s in trace.emitted) > 0


# ================================================================================================
# 9. End to end on the real MNIST.
# ================================================================================================


@pytest.mark.slow
def test_quick_config_learns_mnist(load_config, mnist_data_dir, tmp_path, monkeypatch):
  """configs/mnist_eqspike.py:quick: 784-512-10, 2000 training images, 2 epochs, 1000 test.

  Bound: chance is 10 %; with 1000 test images the binomial std is ~1 % (sqrt(0.9 * 0.1 / 1000)),
  so 75 % is ~65 std above chance. The run measures 84.7 % after epoch 1 and 89.7 % after epoch 2
  (seed 0); 75 % leaves room for numerical drift across JAX versions and platforms and for a
  borderline spike flipping, while failing on any real regression of the dynamics or the rule.
  """
  config = load_config("mnist_eqspike", "quick")
  config.download = False  # Fail loudly, never wait on a download.
  monkeypatch.setenv("TFDS_DATA_DIR", mnist_data_dir)
  summary = train.train_and_evaluate(config, str(tmp_path))

  accuracies = summary["test_accuracy_per_epoch"]
  assert len(accuracies) == 2
  assert accuracies[-1] >= 0.75, accuracies
  assert accuracies[0] >= 0.6, accuracies  # Measured 84.7 %.

  # The per-epoch records hold the event counts of both phases.
  record = summary["epochs"][-1]
  n_free = sum(config.layer_sizes[1:])
  for phase in ("free", "nudged"):
    for name in ("spikes/layer0", "spikes/layer1", "spikes/layer2", "synaptic_ops",
                 "neuron_updates"):
      value = record[f"train_events/{phase}/{name}"]
      assert np.isfinite(value) and value > 0, (phase, name, value)
  assert "train_events/nudged/synaptic_updates" in record
  assert record["train_events/free/neuron_updates"] == config.t_free * n_free
  # Symmetric nudging: two nudged phases.
  assert record["train_events/nudged/neuron_updates"] == 2 * config.t_nudge * n_free
  # A spike is delivered to every target: input -> 512, hidden -> 10, output -> back to 512.
  sizes_ = config.layer_sizes
  expected_sops = (sizes_[1] * record["train_events/free/spikes/layer0"]
                   + sizes_[2] * record["train_events/free/spikes/layer1"]
                   + sizes_[1] * record["train_events/free/spikes/layer2"])
  np.testing.assert_allclose(record["train_events/free/synaptic_ops"], expected_sops, rtol=1e-4)
  # The input encodes pixel intensities: MNIST has ~100 units of ink per image (mean pixel
  # 0.13 x 784), so ~100 input spikes per step.
  per_step = record["train_events/free/spikes/layer0"] / config.t_free
  assert 80 < per_step < 120, per_step
