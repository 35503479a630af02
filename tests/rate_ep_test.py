"""Tests of rate-based EP: analytic values, EP against jax.grad, and equivalent formulations.

Sizes are distinct on purpose (batch 7, layers 6-5-4-3, phases of 8 and 5 steps) so that a swapped
axis cannot pass.
"""

import functools

import chex
import jax
from jax import flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from eqspike_jax import network
from eqspike_jax import optim
from eqspike_jax import rate_ep
from eqspike_jax.network import Layer

SIZES = (6, 5, 4, 3)  # Two hidden layers.
BATCH = 7
SHORT = rate_ep.Dynamics(t_free=8, t_nudge=5)


@functools.lru_cache(maxsize=None)
def _problem(sizes=SIZES, batch=BATCH, seed=0, dtype=jnp.float32):
  """A random network (the default uniform init), inputs in [0, 1] and one-hot targets.

  Drawn with numpy: eager JAX would compile a kernel per op, which costs more than the tests.
  """
  rng = np.random.default_rng(seed)
  params = []
  for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
    bound = 1.0 / np.sqrt(fan_in)
    params.append(Layer(w=jnp.asarray(rng.uniform(-bound, bound, (fan_in, fan_out)), dtype),
                        b=jnp.asarray(rng.uniform(-bound, bound, (fan_out,)), dtype)))
  x = jnp.asarray(rng.uniform(0.0, 1.0, (batch, sizes[0])), dtype)
  y = jnp.asarray(np.eye(sizes[-1])[rng.integers(0, sizes[-1], batch)], dtype)
  return tuple(params), x, y


def _flat(tree):
  return np.concatenate([np.ravel(a) for a in jax.tree.leaves(tree)])


def _cosine(a, b):
  a, b = np.ravel(a), np.ravel(b)
  return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# ================================================================================================
# Analytic values: tiny networks whose recurrence is written out by hand.
# ================================================================================================


def _sigmoid4_np(v):
  return 1.0 / (1.0 + np.exp(-4.0 * (v - 0.5)))


def _hard_sigmoid_np(v):
  return float(np.clip(v, 0.0, 1.0))


NP_ACTIVATIONS = {"sigmoid4": _sigmoid4_np, "hard_sigmoid": _hard_sigmoid_np}

# Network 2-1-1: input (x1, x2), one hidden unit h, one output unit o.
X1, X2 = 0.6, 0.9
W_XH = (1.2, -0.5)  # x -> h.
B_H = 0.3
W_HO = 1.5          # h -> o, and o -> h (symmetric).
B_O = -0.4
Y = 1.0


def _params_2_1_1():
  return (Layer(w=jnp.array([[W_XH[0]], [W_XH[1]]]), b=jnp.array([B_H])),
          Layer(w=jnp.array([[W_HO]]), b=jnp.array([B_O])))


def _hand_trajectory_2_1_1(rho, beta, num_steps, x=(X1, X2), h=0.0, o=0.0):
  """``[(h_t, o_t)]`` for t = 0 .. num_steps, from the synchronous recurrence written out."""
  trajectory = [(h, o)]
  for _ in range(num_steps):
    h, o = (rho(W_XH[0] * x[0] + W_XH[1] * x[1] + B_H + W_HO * o),
            rho(W_HO * h + B_O + beta * (Y - o)))
    trajectory.append((h, o))
  return trajectory


def _run_2_1_1(activation, beta, num_steps):
  params = _params_2_1_1()
  drive = jnp.array([X1, X2]) @ params[0].w
  s0 = network.zero_state(params)
  return rate_ep.run_phase(params, drive, s0, jnp.array([Y]), beta, num_steps,
                           network.get_activation(activation))


@pytest.mark.parametrize("activation", ["sigmoid4", "hard_sigmoid"])
@pytest.mark.parametrize("beta", [0.0, 0.5])
@pytest.mark.parametrize("num_steps", [1, 2, 6])
def test_run_phase_matches_hand_recurrence_2_1_1(activation, beta, num_steps):
  trajectory = _hand_trajectory_2_1_1(NP_ACTIVATIONS[activation], beta, num_steps)
  (h, o), residual = _run_2_1_1(activation, beta, num_steps)
  chex.assert_shape([h, o], (1,))
  np.testing.assert_allclose([h[0], o[0]], trajectory[-1], rtol=1e-6, atol=1e-7)
  expected_residual = max(abs(a - b) for a, b in zip(trajectory[-1], trajectory[-2]))
  np.testing.assert_allclose(residual, expected_residual, rtol=1e-5, atol=1e-7)


def test_hand_recurrence_values_2_1_1():
  """Pins the hand recurrence itself to numbers worked out on paper."""
  # First step from rest: h = rho(0.72 - 0.45 + 0.3) = rho(0.57), o = rho(-0.4 + beta).
  h, o = _hand_trajectory_2_1_1(_sigmoid4_np, 0.0, 1)[-1]
  np.testing.assert_allclose([h, o], [1 / (1 + np.exp(-0.28)), 1 / (1 + np.exp(3.6))])
  # Hard sigmoid, beta 0: o clips at 0 on step 1, h clips at 1 on step 3.
  trajectory = _hand_trajectory_2_1_1(_hard_sigmoid_np, 0.0, 3)
  np.testing.assert_allclose(trajectory[1:], [(0.57, 0.0), (0.57, 0.455), (1.0, 0.455)])
  (h, o), _ = _run_2_1_1("hard_sigmoid", 0.0, 3)
  np.testing.assert_allclose([h[0], o[0]], [1.0, 0.455], rtol=1e-6)
  # Hard sigmoid, beta 0.5: the nudge 0.5 (1 - 0) lifts o to 0.1 on step 1.
  (h, o), _ = _run_2_1_1("hard_sigmoid", 0.5, 1)
  np.testing.assert_allclose([h[0], o[0]], [0.57, 0.1], rtol=1e-6)


@pytest.mark.parametrize("beta", [0.0, 0.3])
@pytest.mark.parametrize("num_steps", [1, 4])
def test_run_phase_matches_hand_recurrence_1_1_1_1(beta, num_steps):
  """Two hidden units in a chain: the middle one gets a forward and a feedback drive."""
  x, w0, w1, w2, b0, b1, b2, y = 0.8, 0.9, -1.1, 1.3, 0.2, 0.4, -0.3, 1.0
  rho = _sigmoid4_np
  h1 = h2 = o = 0.0
  for _ in range(num_steps):
    h1, h2, o = (rho(w0 * x + b0 + w1 * h2),
                 rho(w1 * h1 + b1 + w2 * o),
                 rho(w2 * h2 + b2 + beta * (y - o)))
  params = (Layer(w=jnp.array([[w0]]), b=jnp.array([b0])),
            Layer(w=jnp.array([[w1]]), b=jnp.array([b1])),
            Layer(w=jnp.array([[w2]]), b=jnp.array([b2])))
  s, _ = rate_ep.run_phase(params, jnp.array([x]) @ params[0].w, network.zero_state(params),
                           jnp.array([y]), beta, num_steps, network.sigmoid4)
  np.testing.assert_allclose([a[0] for a in s], [h1, h2, o], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("activation", ["sigmoid4", "hard_sigmoid"])
@pytest.mark.parametrize("nudging", ["one_sided", "symmetric"])
def test_ep_gradient_matches_hand_formula_2_1_1(activation, nudging):
  """The EP contrast of dW_l = (1/beta)(s^b s^bT - s* s*T), worked out per unit, batch of 2."""
  rho, beta, t_free, t_nudge = NP_ACTIVATIONS[activation], 0.5, 4, 3
  xs = np.array([[X1, X2], [0.1, 0.3]])
  free, plus, minus = [], [], []
  for x in xs:
    h, o = _hand_trajectory_2_1_1(rho, 0.0, t_free, x=x)[-1]
    free.append((h, o))
    plus.append(_hand_trajectory_2_1_1(rho, beta, t_nudge, x=x, h=h, o=o)[-1])
    minus.append(_hand_trajectory_2_1_1(rho, -beta, t_nudge, x=x, h=h, o=o)[-1])
  if nudging == "one_sided":
    (h_a, o_a), (h_b, o_b), beta_a, beta_b = np.array(plus).T, np.array(free).T, beta, 0.0
  else:
    (h_a, o_a), (h_b, o_b), beta_a, beta_b = np.array(plus).T, np.array(minus).T, beta, -beta
  scale = -1.0 / (len(xs) * (beta_a - beta_b))
  expected = (Layer(w=scale * (xs.T @ (h_a - h_b))[:, None],
                    b=scale * np.array([np.sum(h_a - h_b)])),
              Layer(w=scale * np.array([[np.sum(h_a * o_a - h_b * o_b)]]),
                    b=scale * np.array([np.sum(o_a - o_b)])))

  dyn = rate_ep.Dynamics(activation=activation, t_free=t_free, t_nudge=t_nudge)
  ys = jnp.ones((2, 1)) * Y
  ep_gradient = jax.jit(functools.partial(rate_ep.ep_gradient, dyn=dyn, beta=beta,
                                          nudging=nudging))
  grads, metrics = ep_gradient(_params_2_1_1(), jnp.asarray(xs, jnp.float32), ys,
                               jax.random.PRNGKey(0))
  chex.assert_trees_all_close(grads, expected, rtol=1e-5, atol=1e-6)
  o_free = np.array(free)[:, 1]
  np.testing.assert_allclose(metrics["loss"], np.mean(0.5 * (o_free - Y) ** 2), rtol=1e-5)


# ================================================================================================
# Theory: as beta -> 0 the EP estimate is the gradient of the cost at the free fixed point.
# ================================================================================================

T_CONVERGED = 300  # The 6-5-4-3 network below settles (residual exactly 0 in float64) in 100.


def _true_gradient_by_scan(params, x, y):
  """``d C(s*(theta)) / d theta`` by jax.grad through the whole (converged) free phase."""
  def loss(p):
    s0 = rate_ep.batched_zero_state(p, x.shape[0], x.dtype)
    s, residual = rate_ep.batched_phase(p, x @ p[0].w, s0, y, 0.0, T_CONVERGED,
                                        network.sigmoid4, 1)
    return jnp.mean(network.cost(s[-1], y)), (s, residual)
  return jax.grad(loss, has_aux=True)(params)


def _true_gradient_implicit(params, x, y, s_star):
  """The gradient by the implicit function theorem at the fixed point ``s* = f(theta, s*)``.

  ``dC/dtheta = lambda^T df/dtheta`` with ``(I - df/ds)^T lambda = dC/ds``; the batch is part of
  the state vector (its Jacobian is block diagonal).
  """
  flat_s, unravel = flatten_util.ravel_pytree(s_star)
  batched_step = jax.vmap(rate_ep.step, in_axes=(None, 0, 0, 0, None, None))

  def f(p, s_vec):
    s_next = batched_step(p, x @ p[0].w, unravel(s_vec), y, 0.0, network.sigmoid4)
    return flatten_util.ravel_pytree(s_next)[0]

  jac = jax.jacobian(f, argnums=1)(params, flat_s)
  dc_ds = jax.grad(lambda v: jnp.mean(network.cost(unravel(v)[-1], y)))(flat_s)
  lam = jnp.linalg.solve((jnp.eye(flat_s.size) - jac).T, dc_ds)
  _, vjp = jax.vjp(lambda p: f(p, flat_s), params)
  return vjp(lam)[0]


def _leaf_errors(estimate, truth):
  """Relative error of every leaf (each layer's w and b)."""
  return np.array([np.linalg.norm(np.ravel(e - t)) / np.linalg.norm(np.ravel(t))
                   for e, t in zip(jax.tree.leaves(estimate), jax.tree.leaves(truth))])


@pytest.fixture(scope="module")
def true_gradient():
  """A 6-5-4-3 network in float64 whose free phase converges: ``(params, x, y, grad, s*, res)``."""
  with jax.enable_x64(True):
    params, x, y = _problem(dtype=jnp.float64)
    grad, (s_star, residual) = jax.jit(_true_gradient_by_scan)(params, x, y)
  return params, x, y, grad, s_star, residual


def test_true_gradient_references_agree(x64, true_gradient):
  """Through the scan and implicit: they agree, so the free phase has reached its fixed point."""
  del x64
  params, x, y, grad, s_star, residual = true_gradient
  assert np.max(residual) < 1e-12
  chex.assert_type(jax.tree.leaves(grad), jnp.float64)
  implicit = jax.jit(_true_gradient_implicit)(params, x, y, s_star)
  chex.assert_trees_all_close(grad, implicit, rtol=1e-9, atol=1e-12)
  # The comparison must not be vacuous: every layer's gradient is far from 0.
  for leaf in jax.tree.leaves(grad):
    assert np.max(np.abs(leaf)) > 1e-3


BETAS = (0.1, 0.01, 0.001)


def test_ep_gradient_matches_true_gradient(x64, true_gradient):
  """Long phases (converged); one-sided error O(beta), symmetric O(beta^2), for every layer."""
  del x64
  params, x, y, grad, _, _ = true_gradient
  dyn = rate_ep.Dynamics(t_free=T_CONVERGED, t_nudge=T_CONVERGED)
  leaf_errors = {}
  for nudging in ("one_sided", "symmetric"):
    estimate_fn = jax.jit(lambda p, b, n=nudging: rate_ep.ep_gradient(
        p, x, y, jax.random.PRNGKey(0), dyn=dyn, beta=b, nudging=n)[0])
    errors = []
    for beta in BETAS:
      estimate = estimate_fn(params, jnp.float64(beta))
      chex.assert_trees_all_equal_shapes_and_dtypes(estimate, grad)
      cos = _cosine(_flat(estimate), _flat(grad))
      assert cos >= 0.99, f"{nudging} beta={beta}: cosine {cos:.5f}"
      # Every layer's w and b on its own (lowest measured: 0.9975, one-sided at beta 0.1).
      for l, (est, ref) in enumerate(zip(estimate, grad)):
        for name in ("w", "b"):
          cos = _cosine(getattr(est, name), getattr(ref, name))
          assert cos >= 0.99, f"{nudging} beta={beta} layer {l} {name}: cosine {cos:.5f}"
      errors.append(_leaf_errors(estimate, grad))
    leaf_errors[nudging] = np.array(errors)  # [beta, leaf]

  # Every leaf's error shrinks with beta: O(beta) one-sided (measured ratios 0.098 .. 0.118 per
  # decade of beta), O(beta^2) symmetric (0.0099 .. 0.0102).
  one_sided, symmetric = leaf_errors["one_sided"], leaf_errors["symmetric"]
  ratios = one_sided[1:] / one_sided[:-1]
  assert np.all((ratios > 0.05) & (ratios < 0.2)), (one_sided, ratios)
  assert np.all(one_sided[-1] < 1e-2), one_sided  # Measured <= 1.4e-3.
  ratios = symmetric[1:] / symmetric[:-1]
  assert np.all(ratios < 0.02), (symmetric, ratios)
  assert np.all(symmetric[-1] < 1e-5), symmetric  # Measured <= 1.3e-6.
  # Symmetric beats one-sided at every beta (measured error ratio <= 0.23, at beta 0.1).
  assert np.all(symmetric < 0.5 * one_sided), (symmetric, one_sided)


# ================================================================================================
# Equivalent formulations.
# ================================================================================================


def test_batched_phase_equals_loop_over_examples():
  params, x, y = _problem()
  rho = network.sigmoid4
  drive = x @ params[0].w
  rng = np.random.default_rng(1)
  s0 = tuple(jnp.asarray(rng.uniform(0.0, 1.0, (BATCH, n)), jnp.float32) for n in SIZES[1:])
  beta, num_steps = 0.4, 9
  batched_phase = jax.jit(rate_ep.batched_phase, static_argnums=(5, 6, 7))
  s_batch, res_batch = batched_phase(params, drive, s0, y, beta, num_steps, rho, 1)
  chex.assert_shape(s_batch, [(BATCH, n) for n in SIZES[1:]])
  chex.assert_shape(res_batch, (BATCH,))
  run_phase = jax.jit(rate_ep.run_phase, static_argnums=(5, 6))  # Compiled once for the loop.
  looped = [run_phase(params, drive[n], tuple(a[n] for a in s0), y[n], beta, num_steps, rho)
            for n in range(BATCH)]
  s_loop = tuple(jnp.stack([s[l] for s, _ in looped]) for l in range(len(SIZES) - 1))
  res_loop = jnp.stack([r for _, r in looped])
  chex.assert_trees_all_close(s_batch, s_loop, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(res_batch, res_loop, rtol=1e-5, atol=1e-7)
  # Distinct examples reach distinct states, so an example mix-up would show.
  assert float(jnp.min(jnp.abs(s_loop[-1][1:] - s_loop[-1][:-1]).max(-1))) > 1e-4


def test_free_phase_and_predict_are_the_phase_at_beta_0():
  params, x, y = _problem()

  @jax.jit
  def phases(params, x, y):
    s0 = rate_ep.batched_zero_state(params, BATCH)
    reference = rate_ep.batched_phase(params, x @ params[0].w, s0, y, 0.0, SHORT.t_free,
                                      network.sigmoid4, 1)
    return rate_ep.free_phase(params, x, SHORT), reference, rate_ep.predict(params, x, dyn=SHORT)

  free, (s_ref, res_ref), out = phases(params, x, y)
  chex.assert_trees_all_close(free, (s_ref, res_ref), rtol=1e-6)
  chex.assert_shape(out, (BATCH, SIZES[-1]))
  np.testing.assert_allclose(out, s_ref[-1], rtol=1e-6)


def _reference_contrast(x, s_a, s_b, beta_a, beta_b):
  """``-(1/(B (beta_a - beta_b))) sum_n (s_{l,n} s_{l+1,n}^T |_a - |_b)`` by einsum, per example."""
  batch = x.shape[0]
  pre_a, pre_b = (x,) + tuple(s_a[:-1]), (x,) + tuple(s_b[:-1])
  grads = []
  for l in range(len(s_a)):
    dw = (np.einsum("ni,nj->nij", pre_a[l], s_a[l]) - np.einsum("ni,nj->nij", pre_b[l], s_b[l]))
    db = s_a[l] - s_b[l]
    scale = -1.0 / (batch * (beta_a - beta_b))
    grads.append(Layer(w=scale * dw.sum(0), b=scale * db.sum(0)))
  return tuple(grads)


@pytest.mark.parametrize("beta_a,beta_b", [(0.3, 0.0), (-0.3, 0.0), (0.2, -0.2)])
def test_contrast_gradient_equals_outer_product_formula(beta_a, beta_b):
  """The input layer's shortcut ``x^T (s_a - s_b)`` equals the general ``pre^T post`` contrast."""
  _, x, _ = _problem()
  rng = np.random.default_rng(3)
  s_a = tuple(jnp.asarray(rng.uniform(0.0, 1.0, (BATCH, n)), jnp.float32) for n in SIZES[1:])
  s_b = tuple(jnp.asarray(rng.uniform(0.0, 1.0, (BATCH, n)), jnp.float32) for n in SIZES[1:])
  grads = rate_ep.contrast_gradient(x, s_a, s_b, beta_a, beta_b)
  chex.assert_shape([g.w for g in grads], [(m, n) for m, n in zip(SIZES[:-1], SIZES[1:])])
  expected = _reference_contrast(np.asarray(x), [np.asarray(a) for a in s_a],
                                 [np.asarray(b) for b in s_b], beta_a, beta_b)
  chex.assert_trees_all_close(grads, expected, rtol=1e-5, atol=1e-6)


def _update_fn(update_mode, **kwargs):
  update = {"accumulated": rate_ep.accumulated_update, "online": rate_ep.online_update}
  return functools.partial(update[update_mode], **kwargs)


@pytest.mark.parametrize("case", ["ep_gradient/one_sided", "ep_gradient/symmetric",
                                  "accumulated/one_sided/sgd", "online/random_sign/sgd"])
def test_jit_equals_no_jit(case):
  kind, nudging, *optimizer_name = case.split("/")
  params, x, y = _problem()
  key = jax.random.PRNGKey(4)
  if kind == "ep_gradient":
    fn = functools.partial(rate_ep.ep_gradient, dyn=SHORT, beta=0.2, nudging=nudging)
    args = (params, x, y, key)
  else:
    optimizer = optim.make_optimizer(optimizer_name[0], (1e-2, 2e-2, 3e-2))
    fn = _update_fn(kind, dyn=SHORT, beta=0.2, nudging=nudging, optimizer=optimizer)
    args = (params, optimizer.init(params), x, y, key)
  chex.assert_trees_all_close(jax.jit(fn)(*args), fn(*args), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("what", ["ep_gradient/symmetric", "accumulated/random_sign",
                                  "online/one_sided"])
def test_scan_unroll_does_not_change_results(what):
  kind, nudging = what.split("/")
  params, x, y = _problem()
  optimizer = optim.make_optimizer("sgd", (1e-2, 2e-2, 3e-2))
  results = []
  for unroll in (1, 3):  # 3 divides neither 8 - 1 nor 5 steps: remainders are exercised.
    dyn = rate_ep.Dynamics(t_free=8, t_nudge=5, unroll=unroll)
    if kind == "ep_gradient":
      fn = functools.partial(rate_ep.ep_gradient, dyn=dyn, beta=0.2, nudging=nudging)
      args = (params, x, y, jax.random.PRNGKey(4))
    else:
      fn = _update_fn(kind, dyn=dyn, beta=0.2, nudging=nudging, optimizer=optimizer)
      args = (params, optimizer.init(params), x, y, jax.random.PRNGKey(4))
    results.append(jax.jit(fn)(*args))
  if kind == "ep_gradient":
    chex.assert_trees_all_equal(results[0], results[1])
  else:
    # Parameters and optimizer state bitwise; the metrics may differ in the last bit (online
    # mode sums the per-step gradients for its norm, and unrolling reorders that sum).
    chex.assert_trees_all_equal(results[0][:2], results[1][:2])
    chex.assert_trees_all_close(results[0][2], results[1][2], rtol=1e-6)


# ================================================================================================
# Online (C-EP) against accumulated updates.
# ================================================================================================


@pytest.mark.parametrize("nudging", ["one_sided", "random_sign"])
def test_online_update_agrees_with_accumulated_to_first_order(x64, nudging):
  """With SGD, C-EP's parameter change differs from EP's by O(lr^2), i.e. O(lr) relatively."""
  del x64
  params, x, y = _problem(dtype=jnp.float64)
  dyn = rate_ep.Dynamics(t_free=40, t_nudge=20)
  key = jax.random.PRNGKey(5)

  @jax.jit
  def both_updates(lr):
    optimizer = optim.make_optimizer("sgd", (lr, lr, lr))
    kwargs = dict(dyn=dyn, beta=0.1, nudging=nudging, optimizer=optimizer)
    p_acc, _, _ = rate_ep.accumulated_update(params, optimizer.init(params), x, y, key, **kwargs)
    p_onl, _, _ = rate_ep.online_update(params, optimizer.init(params), x, y, key, **kwargs)
    return p_acc, p_onl

  rel_diffs = []
  for lr in (1e-3, 1e-4, 1e-5):
    p_acc, p_onl = both_updates(jnp.float64(lr))
    delta_acc = _flat(p_acc) - _flat(params)
    delta_onl = _flat(p_onl) - _flat(params)
    rel_diffs.append(np.linalg.norm(delta_onl - delta_acc) / np.linalg.norm(delta_acc))
  # Measured: 5.2e-2, 4.9e-3, 4.9e-4 (one-sided); 4.0e-2, 4.2e-3, 4.2e-4 (random sign, which
  # draws -beta for this key).
  ratios = np.array(rel_diffs[1:]) / np.array(rel_diffs[:-1])
  assert np.all((ratios > 0.05) & (ratios < 0.2)), (rel_diffs, ratios)
  assert rel_diffs[-1] < 1e-3, rel_diffs


def test_online_update_rejects_symmetric_nudging():
  params, x, y = _problem()
  optimizer = optim.make_optimizer("sgd", (1e-2,) * 3)
  with pytest.raises(ValueError, match="online.*one_sided"):
    rate_ep.online_update(params, optimizer.init(params), x, y, jax.random.PRNGKey(0), dyn=SHORT,
                          beta=0.1, nudging="symmetric", optimizer=optimizer)


# ================================================================================================
# Random sign of beta; symmetric nudging is deterministic.
# ================================================================================================


def test_random_sign_draws_both_signs():
  beta = 0.25
  keys = jax.random.split(jax.random.PRNGKey(0), 200)
  signs = np.asarray(jax.vmap(lambda k: rate_ep.signed_beta(beta, "random_sign", k))(keys))
  assert set(np.unique(signs)) == {-beta, beta}
  # Binomial(200, 1/2): mean 100, std 7; 70 .. 130 is beyond 4 std.
  assert 70 <= np.sum(signs > 0) <= 130
  for nudging in ("one_sided", "symmetric"):
    assert float(rate_ep.signed_beta(beta, nudging, jax.random.PRNGKey(1))) == beta


def test_random_sign_gradient_is_one_of_two_phases():
  """Per key, random sign gives the one-sided estimate at +beta or at -beta, and both occur."""
  params, x, y = _problem()
  fn = jax.jit(lambda key, nudging: rate_ep.ep_gradient(
      params, x, y, key, dyn=SHORT, beta=0.2, nudging=nudging)[0], static_argnums=1)
  plus = fn(jax.random.PRNGKey(0), "one_sided")

  @jax.jit
  def one_sided_at_minus_beta():
    s0 = rate_ep.batched_zero_state(params, BATCH)
    drive = x @ params[0].w
    s_free, _ = rate_ep.batched_phase(params, drive, s0, y, 0.0, 8, network.sigmoid4, 1)
    s_minus, _ = rate_ep.batched_phase(params, drive, s_free, y, -0.2, 5, network.sigmoid4, 1)
    return rate_ep.contrast_gradient(x, s_minus, s_free, -0.2, 0.0)

  minus = one_sided_at_minus_beta()
  assert np.linalg.norm(_flat(minus) - _flat(plus)) > 1e-2 * np.linalg.norm(_flat(plus))
  seen = set()
  for i in range(12):
    key = jax.random.PRNGKey(i)
    grads = fn(key, "random_sign")
    if float(rate_ep.signed_beta(0.2, "random_sign", key)) > 0:
      chex.assert_trees_all_close(grads, plus, rtol=1e-6)
      seen.add("+")
    else:
      chex.assert_trees_all_close(grads, minus, rtol=1e-5, atol=1e-7)
      seen.add("-")
  assert seen == {"+", "-"}


def test_symmetric_gradient_does_not_depend_on_the_key():
  params, x, y = _problem()
  fn = jax.jit(lambda key: rate_ep.ep_gradient(params, x, y, key, dyn=SHORT, beta=0.2,
                                               nudging="symmetric"))
  first = fn(jax.random.PRNGKey(0))
  for i in range(1, 6):
    chex.assert_trees_all_equal(fn(jax.random.PRNGKey(i)), first)


# ================================================================================================
# The algorithm the trainer sees.
# ================================================================================================


def test_make_algorithm_wires_the_config():
  from eqspike_jax import config_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.base_config()
  config.layer_sizes = SIZES
  config.learning_rates = (1e-2, 2e-2, 3e-2)
  config.t_free, config.t_nudge, config.beta, config.nudging = 8, 5, 0.2, "random_sign"
  optimizer = optim.make_optimizer("adam", config.learning_rates)
  algorithm = rate_ep.make_algorithm(config, optimizer)
  params, x, y = _problem()
  direct = _update_fn("accumulated", dyn=SHORT, beta=0.2, nudging="random_sign",
                      optimizer=optimizer)

  @jax.jit
  def both(opt_state, key):
    return (algorithm.update(params, opt_state, x, y, key),
            direct(params, opt_state, x, y, key),
            algorithm.predict(params, x), rate_ep.predict(params, x, dyn=SHORT))

  got, expected, predicted, expected_predicted = both(optimizer.init(params),
                                                      jax.random.PRNGKey(2))
  chex.assert_trees_all_close(got, expected, rtol=1e-6)
  np.testing.assert_allclose(predicted, expected_predicted, rtol=1e-6)
