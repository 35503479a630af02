"""Tests of the EP core against fake models whose contrast is known, so every factor is by hand.

The core's job is bookkeeping: which betas a step runs, the scale -1 / (B (beta_a - beta_b)), the
optimizer step(s) and the collectives. A fake ``estimate_fn`` returning fixed sums (and a fake
``OnlinePhases``) isolates that bookkeeping from any model's dynamics.
"""

import chex
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from eqspike_jax import ep_core
from eqspike_jax import optim
from eqspike_jax.network import Layer

BATCH = 4
BETA = 0.25
LR = 0.1
MODES = ("one_sided", "random_sign", "symmetric")

# Fixed sums of a one-layer "network" w [2, 3], b [3].
SUMS = (Layer(w=jnp.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.5]]), b=jnp.array([2.0, -1.0, 0.25])),)
PARAMS = (Layer(w=jnp.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]), b=jnp.array([-0.1, 0.0, 0.1])),)


def _batch(seed=0, batch=BATCH):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.uniform(size=(batch, 2)), jnp.float32)
  y = jnp.asarray(np.eye(3)[rng.integers(0, 3, batch)], jnp.float32)
  return x, y


def _drawn_sign(key):
  """The sign random_sign draws for a step key, written out: bernoulli of the key's first half."""
  k_sign, _ = jax.random.split(key)
  return 1.0 if bool(jax.random.bernoulli(k_sign)) else -1.0


def _fake_estimate(params, x, y, betas, key):
  """Fixed sums; the metrics record what the core handed in."""
  del params, y
  return SUMS, {"betas": betas, "key": key, "x_sum": jnp.sum(x)}


# ================================================================================================
# Nudging.
# ================================================================================================


def test_nudging_betas_and_scale_by_hand():
  key = jax.random.PRNGKey(0)
  one_sided = ep_core.Nudging("one_sided", BETA)
  assert (one_sided.symmetric, one_sided.num_phases) == (False, 1)
  np.testing.assert_allclose(one_sided.betas(key), [BETA])
  np.testing.assert_allclose(one_sided.scale(BATCH, one_sided.betas(key)), -1.0 / (4 * 0.25))

  symmetric = ep_core.Nudging("symmetric", BETA)
  assert (symmetric.symmetric, symmetric.num_phases) == (True, 2)
  np.testing.assert_allclose(symmetric.betas(key), [BETA, -BETA])
  # +beta against -beta: -1 / (4 (0.25 + 0.25)) = -0.5.
  np.testing.assert_allclose(symmetric.scale(BATCH, symmetric.betas(key)), -0.5)

  random_sign = ep_core.Nudging("random_sign", BETA)
  assert (random_sign.symmetric, random_sign.num_phases) == (False, 1)
  # The scale follows the drawn sign: -1 / (B beta) or +1 / (B beta).
  np.testing.assert_allclose(random_sign.scale(BATCH, jnp.array([BETA])), -1.0)
  np.testing.assert_allclose(random_sign.scale(BATCH, jnp.array([-BETA])), 1.0)
  for i in range(4):
    betas = random_sign.betas(jax.random.PRNGKey(i))
    chex.assert_shape(betas, (1,))
    assert float(abs(betas[0])) == pytest.approx(BETA)


def test_nudging_refuses_unknown_mode():
  with pytest.raises(ValueError, match="'sideways'"):
    ep_core.Nudging("sideways", BETA)


def test_one_sided_and_symmetric_betas_do_not_depend_on_the_key():
  for mode in ("one_sided", "symmetric"):
    nudging = ep_core.Nudging(mode, BETA)
    first = nudging.betas(jax.random.PRNGKey(0))
    for i in range(1, 5):
      chex.assert_trees_all_equal(nudging.betas(jax.random.PRNGKey(i)), first)


def test_random_sign_draws_each_sign_half_the_time():
  n = 1000
  keys = jax.random.split(jax.random.PRNGKey(0), n)
  betas = np.asarray(jax.vmap(ep_core.Nudging("random_sign", BETA).betas)(keys))[:, 0]
  assert set(np.unique(betas)) == {np.float32(-BETA), np.float32(BETA)}
  # Binomial(1000, 1/2): mean 500, std sqrt(1000) / 2 = 15.8; 5 std either side is 421 .. 579
  # (a fair draw leaves it with probability 6e-7; a sign stuck or biased to 60 % cannot pass).
  positives = int(np.sum(betas > 0))
  assert 421 <= positives <= 579, positives


@pytest.mark.parametrize("mode", MODES)
def test_betas_have_the_requested_dtype(mode):
  """``betas(key, dtype)``: the phases run in the data's dtype (the trainer passes x.dtype)."""
  betas = ep_core.Nudging(mode, BETA).betas(jax.random.PRNGKey(0), jnp.bfloat16)
  chex.assert_type(betas, jnp.bfloat16)


# ================================================================================================
# The step key: betas shared by every device, the model's key its own.
# ================================================================================================


def test_split_step_key_without_devices():
  key = jax.random.PRNGKey(3)
  nudging = ep_core.Nudging("random_sign", BETA)
  betas, k_model = ep_core.split_step_key(key, nudging, jnp.float32, None)
  np.testing.assert_allclose(betas, [_drawn_sign(key) * BETA])
  chex.assert_trees_all_equal(k_model, jax.random.split(key)[1])


def test_split_step_key_shares_betas_across_devices():
  """Under a device axis (emulated by a named vmap) every device draws the same sign, and the
  model keys differ: fold_in(model key, device index)."""
  num_devices = 4
  nudging = ep_core.Nudging("random_sign", BETA)
  split = jax.jit(jax.vmap(lambda k: ep_core.split_step_key(k, nudging, jnp.float32, "devices"),
                           in_axes=None, axis_size=num_devices, axis_name="devices"))
  signs = set()
  for i in range(8):
    key = jax.random.PRNGKey(i)
    betas, k_model = split(key)
    chex.assert_shape(betas, (num_devices, 1))
    np.testing.assert_array_equal(betas, np.full((num_devices, 1), _drawn_sign(key) * BETA,
                                                 np.float32))
    signs.add(float(betas[0, 0]) > 0)
    expected = jnp.stack([jax.random.fold_in(jax.random.split(key)[1], d)
                          for d in range(num_devices)])
    chex.assert_trees_all_equal(k_model, expected)
    assert len({tuple(np.asarray(k)) for k in k_model}) == num_devices
  assert signs == {True, False}  # Both signs occurred, so "the same" is not "always +".


# ================================================================================================
# Accumulated updates: grads = scale * sums, one optimizer step.
# ================================================================================================


@pytest.mark.parametrize("mode", MODES)
def test_accumulated_update_applies_the_scaled_sums_with_sgd(mode):
  nudging = ep_core.Nudging(mode, BETA)
  optimizer = optim.make_optimizer("sgd", (LR,))
  update = jax.jit(ep_core.accumulated_update(_fake_estimate, nudging, optimizer))
  x, y = _batch()
  key = jax.random.PRNGKey(5)
  params, _, metrics = update(PARAMS, optimizer.init(PARAMS), x, y, key)
  beta_a, beta_b = {"one_sided": (BETA, 0.0), "symmetric": (BETA, -BETA),
                    "random_sign": (_drawn_sign(key) * BETA, 0.0)}[mode]
  scale = -1.0 / (BATCH * (beta_a - beta_b))
  expected = jax.tree.map(lambda p, s: p - LR * scale * s, PARAMS, SUMS)
  chex.assert_trees_all_close(params, expected, rtol=1e-6, atol=1e-7)
  # The estimate got this step's betas and the model's half of the key; its metrics pass through.
  np.testing.assert_allclose(metrics["betas"], [beta_a, beta_b][:nudging.num_phases])
  chex.assert_trees_all_equal(metrics["key"], jax.random.split(key)[1])
  np.testing.assert_allclose(metrics["x_sum"], np.sum(np.asarray(x)), rtol=1e-6)
  np.testing.assert_allclose(metrics["grad_norm/layer0"],
                             abs(scale) * np.linalg.norm(np.concatenate(
                                 [np.ravel(SUMS[0].w), SUMS[0].b])), rtol=1e-6)


def test_estimate_gradient_scales_and_checks_shapes():
  nudging = ep_core.Nudging("one_sided", BETA)
  x, y = _batch()
  betas = nudging.betas(jax.random.PRNGKey(0))
  grads, metrics = ep_core.estimate_gradient(_fake_estimate, nudging, PARAMS, x, y, betas,
                                             jax.random.PRNGKey(1))
  chex.assert_trees_all_close(grads, jax.tree.map(lambda s: -s / (BATCH * BETA), SUMS))
  chex.assert_trees_all_equal(metrics["key"], jax.random.PRNGKey(1))  # Handed on unchanged.
  with pytest.raises(AssertionError):  # One example instead of a batch.
    ep_core.estimate_gradient(_fake_estimate, nudging, PARAMS, x[0], y[0], betas, None)
  with pytest.raises(AssertionError):  # Inputs and targets of different batches.
    ep_core.estimate_gradient(_fake_estimate, nudging, PARAMS, x, y[:2], betas, None)


def test_accumulated_update_averages_over_devices():
  """With an axis name, every device applies the mean of the devices' gradients."""
  num_devices = 3

  def estimate(params, x, y, betas, key):
    del params, y, betas, key
    return jax.tree.map(lambda s: jnp.sum(x) * s, SUMS), {"x_sum": jnp.sum(x)}

  nudging = ep_core.Nudging("one_sided", BETA)
  optimizer = optim.make_optimizer("sgd", (LR,))
  update = ep_core.accumulated_update(estimate, nudging, optimizer)
  xs, ys = zip(*(_batch(seed) for seed in range(num_devices)))
  xs, ys = jnp.stack(xs), jnp.stack(ys)
  p_update = jax.jit(jax.vmap(lambda x, y: update(PARAMS, optimizer.init(PARAMS), x, y,
                                                  jax.random.PRNGKey(0), axis_name="devices"),
                              axis_name="devices"))
  params, _, metrics = p_update(xs, ys)
  x_sums = np.asarray(xs).sum(axis=(1, 2))
  scale = -1.0 / (BATCH * BETA)
  expected = jax.tree.map(lambda p, s: p - LR * scale * np.mean(x_sums) * s, PARAMS, SUMS)
  for d in range(num_devices):
    chex.assert_trees_all_close(ep_core.phase(params, d), expected, rtol=1e-5)
  np.testing.assert_allclose(metrics["x_sum"], np.full(num_devices, np.mean(x_sums)), rtol=1e-6)
  assert np.ptp(x_sums) > 0.1  # The devices' batches differ, so the mean is not a copy.


# ================================================================================================
# Online updates: one optimizer step per nudged step, at the moving weights.
# ================================================================================================

XS = jnp.array([[2.0, 1.0], [-1.0, 3.0]])  # Two nudged steps, time-major.


def _fake_online_phases():
  """A model whose step contrast depends on the current weights: ``a_t w + c_t`` for w and
  ``c_t`` for b, so an update applied at the wrong time (or not at all) shows."""

  def begin(params, x, y, betas, key):
    del params, y, betas, key
    return jnp.zeros(()), XS, jnp.sum(x)

  def step(params, states, xs_t, y, betas):
    del y
    a, c = xs_t[0], xs_t[1]
    sums = (Layer(w=a * params[0].w + c, b=c * jnp.ones_like(params[0].b)),)
    return states + 1.0, sums, {"w00": params[0].w[0, 0], "states": states, "beta": betas[0]}

  def metrics(params, y, free, obs):
    del y
    return {"free": free, "obs": obs, "final_w00": params[0].w[0, 0]}

  return ep_core.OnlinePhases(begin=begin, step=step, metrics=metrics)


def test_online_update_applies_each_step_at_the_moving_weights():
  nudging = ep_core.Nudging("one_sided", BETA)
  optimizer = optim.make_optimizer("sgd", (LR,))
  update = jax.jit(ep_core.online_update(_fake_online_phases(), nudging, optimizer))
  x, y = _batch()
  params, _, metrics = update(PARAMS, optimizer.init(PARAMS), x, y, jax.random.PRNGKey(0))

  # By hand, scale c = -1 / (B beta) = -1.
  scale = -1.0 / (BATCH * BETA)
  w, b = np.asarray(PARAMS[0].w), np.asarray(PARAMS[0].b)
  seen_w00, total_w, total_b = [], 0.0, 0.0
  for a, c in np.asarray(XS):
    seen_w00.append(w[0, 0])
    g_w, g_b = scale * (a * w + c), scale * c * np.ones_like(b)
    w, b = w - LR * g_w, b - LR * g_b
    total_w, total_b = total_w + g_w, total_b + g_b
  chex.assert_trees_all_close(params, (Layer(w=w, b=b),), rtol=1e-5)
  np.testing.assert_allclose(metrics["obs"]["w00"], seen_w00, rtol=1e-6)  # Time-major obs.
  np.testing.assert_allclose(metrics["obs"]["states"], [0.0, 1.0])      # States carried.
  np.testing.assert_allclose(metrics["obs"]["beta"], [BETA, BETA])
  np.testing.assert_allclose(metrics["final_w00"], w[0, 0], rtol=1e-5)  # Metrics at the end.
  np.testing.assert_allclose(metrics["free"], np.sum(np.asarray(x)), rtol=1e-6)
  np.testing.assert_allclose(metrics["grad_norm/layer0"],
                             np.linalg.norm(np.concatenate([np.ravel(total_w), total_b])),
                             rtol=1e-5)
  # Not the same as one step with the summed contrast at the initial weights.
  assert abs(seen_w00[1] - seen_w00[0]) > 1e-2


def _scaled_online_phases(factor_fn):
  """The fake online phases with every step's contrast multiplied by ``factor_fn()``."""
  phases = _fake_online_phases()

  def step(params, states, xs_t, y, betas):
    states, sums, obs = phases.step(params, states, xs_t, y, betas)
    return states, jax.tree.map(lambda s: factor_fn() * s, sums), obs

  return phases._replace(step=step)


def test_online_update_averages_over_devices():
  """Device d's contrast is (d + 1) times device 0's: every device applies the mean, 1.5."""
  num_devices = 2
  nudging = ep_core.Nudging("one_sided", BETA)
  optimizer = optim.make_optimizer("sgd", (LR,))
  x, y = _batch()
  update = ep_core.online_update(
      _scaled_online_phases(lambda: 1.0 + jax.lax.axis_index("devices")), nudging, optimizer)
  params, _, _ = jax.jit(jax.vmap(
      lambda k: update(PARAMS, optimizer.init(PARAMS), x, y, k, axis_name="devices"),
      in_axes=None, axis_size=num_devices, axis_name="devices"))(jax.random.PRNGKey(0))
  single = ep_core.online_update(_scaled_online_phases(lambda: 1.5), nudging, optimizer)
  expected, _, _ = jax.jit(single)(PARAMS, optimizer.init(PARAMS), x, y, jax.random.PRNGKey(0))
  unscaled, _, _ = jax.jit(ep_core.online_update(_fake_online_phases(), nudging, optimizer))(
      PARAMS, optimizer.init(PARAMS), x, y, jax.random.PRNGKey(0))
  for d in range(num_devices):
    chex.assert_trees_all_close(ep_core.phase(params, d), expected, rtol=1e-5)
  assert not np.allclose(expected[0].w, unscaled[0].w)  # The factor is visible.


# ================================================================================================
# Small helpers.
# ================================================================================================


def test_make_update_dispatch_and_refusals():
  nudging = ep_core.Nudging("one_sided", BETA)
  optimizer = optax.sgd(LR)
  x, y = _batch()
  accumulated = ep_core.make_update("accumulated", nudging, optimizer,
                                    estimate_fn=_fake_estimate, online=None)
  chex.assert_trees_all_close(
      accumulated(PARAMS, optimizer.init(PARAMS), x, y, jax.random.PRNGKey(0))[0],
      ep_core.accumulated_update(_fake_estimate, nudging, optimizer)(
          PARAMS, optimizer.init(PARAMS), x, y, jax.random.PRNGKey(0))[0])
  online = ep_core.make_update("online", nudging, optimizer, estimate_fn=_fake_estimate,
                               online=_fake_online_phases())
  chex.assert_trees_all_close(
      online(PARAMS, optimizer.init(PARAMS), x, y, jax.random.PRNGKey(0))[0],
      ep_core.online_update(_fake_online_phases(), nudging, optimizer)(
          PARAMS, optimizer.init(PARAMS), x, y, jax.random.PRNGKey(0))[0])
  with pytest.raises(ValueError, match="no online update"):
    ep_core.make_update("online", nudging, optimizer, estimate_fn=_fake_estimate, online=None)
  with pytest.raises(ValueError, match="'sometimes'"):
    ep_core.make_update("sometimes", nudging, optimizer, estimate_fn=_fake_estimate, online=None)


def test_optimizer_steps_per_batch():
  assert ep_core.optimizer_steps_per_batch("accumulated", 20) == 1
  assert ep_core.optimizer_steps_per_batch("online", 20) == 20


def test_gradient_norms_phase_and_vmap_over_betas():
  grads = (Layer(w=jnp.array([[3.0]]), b=jnp.array([4.0])),
           Layer(w=jnp.array([[1.0, 2.0]]), b=jnp.array([2.0, 4.0])))
  norms = ep_core.gradient_norms(grads)
  assert set(norms) == {"grad_norm/layer0", "grad_norm/layer1"}
  np.testing.assert_allclose([norms["grad_norm/layer0"], norms["grad_norm/layer1"]], [5.0, 5.0])
  stacked = ep_core.vmap_over_betas(lambda a, b, beta: {"a": a * beta, "b": b + beta},
                                    jnp.array([1.0, -2.0]), jnp.arange(3.0), 10.0)
  chex.assert_shape(stacked["a"], (2, 3))
  chex.assert_trees_all_close(ep_core.phase(stacked, 1), {"a": jnp.array([0.0, -2.0, -4.0]),
                                                          "b": jnp.array(8.0)})
  with pytest.raises(AssertionError):  # betas must be [num_phases].
    ep_core.vmap_over_betas(lambda beta: beta, jnp.array(1.0))


# ================================================================================================
# The core's maths under jit and without (chex variants).
# ================================================================================================


class CoreVariantsTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*MODES)
  def test_betas_and_scale(self, mode):
    nudging = ep_core.Nudging(mode, BETA)
    key = jax.random.PRNGKey(2)
    betas, scale = self.variant(lambda k: (
        nudging.betas(k), nudging.scale(BATCH, nudging.betas(k))))(key)
    drawn = 1.0 if bool(jax.random.bernoulli(key)) else -1.0
    expected_betas, expected_scale = {
        "one_sided": ([BETA], -1.0 / (BATCH * BETA)),
        "random_sign": ([drawn * BETA], -1.0 / (BATCH * drawn * BETA)),
        "symmetric": ([BETA, -BETA], -1.0 / (2 * BATCH * BETA))}[mode]
    np.testing.assert_allclose(betas, expected_betas)
    np.testing.assert_allclose(scale, expected_scale, rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*MODES)
  def test_estimate_gradient(self, mode):
    nudging = ep_core.Nudging(mode, BETA)
    x, y = _batch()
    betas = nudging.betas(jax.random.PRNGKey(1))
    grads, _ = self.variant(lambda p, x, y, b: ep_core.estimate_gradient(
        _fake_estimate, nudging, p, x, y, b, jax.random.PRNGKey(0)))(PARAMS, x, y, betas)
    scale = float(nudging.scale(BATCH, betas))
    chex.assert_trees_all_close(grads, jax.tree.map(lambda s: scale * s, SUMS), rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_vmap_over_betas(self):
    out = self.variant(lambda betas, v: ep_core.vmap_over_betas(lambda v, b: v * b, betas, v))(
        jnp.array([BETA, -BETA]), jnp.arange(3.0))
    np.testing.assert_allclose(out, [[0.0, BETA, 2 * BETA], [0.0, -BETA, -2 * BETA]])

  @chex.variants(with_jit=True, without_jit=True)
  def test_split_step_key(self):
    key = jax.random.PRNGKey(6)
    betas, k_model = self.variant(lambda k: ep_core.split_step_key(
        k, ep_core.Nudging("random_sign", BETA), jnp.float32, None))(key)
    np.testing.assert_allclose(betas, [_drawn_sign(key) * BETA])
    chex.assert_trees_all_equal(k_model, jax.random.split(key)[1])
