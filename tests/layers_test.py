"""Tests of the layers: forward and transpose are one linear map and its adjoint, the contrast's
outer product is its gradient, initialisation, wiring of the currents, checkpoint checks."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqspike_jax import layers
from eqspike_jax.network import Layer

SIZES = (7, 5, 3)
ARCH = layers.dense_stack(SIZES)


def _random_layer(n_in, n_out, seed=0):
  rng = np.random.default_rng(seed)
  return Layer(w=jnp.asarray(rng.normal(size=(n_in, n_out)), jnp.float32),
               b=jnp.asarray(rng.normal(size=(n_out,)), jnp.float32))


def _normal(shape, seed):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def test_dense_stack_sizes_and_counts():
  chex.assert_equal(ARCH, (layers.Dense(7, 5), layers.Dense(5, 3)))
  assert layers.sizes_of(ARCH) == SIZES
  dense = layers.Dense(7, 5)
  assert (dense.fan_in, dense.fan_out, dense.num_synapses) == (7, 5, 35)
  hash(ARCH)  # Static structure: usable as a jit static argument and a cache key.


@pytest.mark.parametrize("batch_shape", [(), (4,), (4, 6)])
def test_forward_and_transpose_are_adjoint(batch_shape):
  """``<transpose(p, a), b> == <a, forward(p, b)>`` for every batch shape."""
  dense, p = layers.Dense(7, 5), _random_layer(7, 5)
  a, b = _normal(batch_shape + (5,), 1), _normal(batch_shape + (7,), 2)
  chex.assert_shape(dense.forward(p, b), batch_shape + (5,))
  chex.assert_shape(dense.transpose(p, a), batch_shape + (7,))
  lhs = jnp.sum(dense.transpose(p, a) * b)
  rhs = jnp.sum(a * dense.forward(p, b))
  np.testing.assert_allclose(lhs, rhs, rtol=1e-5)
  assert abs(float(lhs)) > 1e-2  # Not a vacuous 0 == 0.
  # By hand (float32 matmuls may sum in another order: an absolute tolerance for small entries).
  np.testing.assert_allclose(dense.forward(p, b), np.asarray(b) @ np.asarray(p.w), rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(dense.transpose(p, a), np.asarray(a) @ np.asarray(p.w).T,
                             rtol=1e-5, atol=1e-5)


def test_transpose_is_the_linear_transpose_of_forward():
  dense, p = layers.Dense(7, 5), _random_layer(7, 5)
  primal = jnp.zeros((4, 7))
  cotangent = _normal((4, 5), 3)
  (transposed,) = jax.linear_transpose(lambda s: dense.forward(p, s), primal)(cotangent)
  np.testing.assert_allclose(transposed, dense.transpose(p, cotangent), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(4,), (4, 6)])  # [B, .] and [B, T, .]
def test_outer_is_the_gradient_of_post_dot_forward(shape):
  dense, p = layers.Dense(7, 5), _random_layer(7, 5)
  pre, post = _normal(shape + (7,), 4), _normal(shape + (5,), 5)
  grad = jax.grad(lambda w: jnp.sum(post * dense.forward(Layer(w=w, b=p.b), pre)))(p.w)
  outer = dense.outer(pre, post)
  chex.assert_shape(outer, (7, 5))
  np.testing.assert_allclose(outer, grad, rtol=1e-5, atol=1e-5)
  # By hand: the sum over examples (and steps) of the per-example outer products.
  flat_pre, flat_post = np.reshape(pre, (-1, 7)), np.reshape(post, (-1, 5))
  np.testing.assert_allclose(outer, sum(np.outer(a, b) for a, b in zip(flat_pre, flat_post)),
                             rtol=1e-5, atol=1e-5)


def test_outer_refuses_mismatched_batches():
  dense = layers.Dense(7, 5)
  with pytest.raises(AssertionError):
    dense.outer(jnp.zeros((4, 7)), jnp.zeros((3, 5)))
  with pytest.raises(AssertionError):
    dense.outer(jnp.zeros((2, 4, 6, 7)), jnp.zeros((2, 4, 6, 5)))  # Rank 4: not [B, T, n].


def test_init_uniform_bounds():
  """PyTorch's nn.Linear: w and b from U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  params = layers.init_params(ARCH, jax.random.PRNGKey(0))
  chex.assert_shape([l.w for l in params], [(7, 5), (5, 3)])
  chex.assert_shape([l.b for l in params], [(5,), (3,)])
  layers.check_params(ARCH, params)
  for layer, fan_in in zip(params, SIZES[:-1]):
    bound = 1.0 / np.sqrt(fan_in)
    for a in (layer.w, layer.b):
      assert np.all(np.abs(a) <= bound)
      assert np.max(np.abs(a)) > 0.5 * bound  # Spread over the range, not all near 0.


def test_init_glorot_and_scale():
  params = layers.init_params(ARCH, jax.random.PRNGKey(0), init="glorot", scale=2.0)
  for layer, fan_in, fan_out in zip(params, SIZES[:-1], SIZES[1:]):
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    assert np.all(np.abs(layer.w) <= 2.0 * bound)
    assert np.max(np.abs(layer.w)) > bound  # The scale is applied (unscaled max <= bound).
    np.testing.assert_array_equal(layer.b, 0.0)
  unscaled = layers.init_params(ARCH, jax.random.PRNGKey(0), init="glorot")
  chex.assert_trees_all_close([l.w for l in params], [2.0 * l.w for l in unscaled])
  # The uniform init scales the weights only; its biases keep their bound.
  uniform = layers.init_params(ARCH, jax.random.PRNGKey(0), "uniform", 3.0)
  reference = layers.init_params(ARCH, jax.random.PRNGKey(0), "uniform", 1.0)
  chex.assert_trees_all_close([l.w for l in uniform], [3.0 * l.w for l in reference])
  chex.assert_trees_all_equal([l.b for l in uniform], [l.b for l in reference])


def test_init_is_deterministic_and_key_dependent():
  first = layers.init_params(ARCH, jax.random.PRNGKey(7))
  chex.assert_trees_all_equal(layers.init_params(ARCH, jax.random.PRNGKey(7)), first)
  other = layers.init_params(ARCH, jax.random.PRNGKey(8))
  for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(other)):
    assert not np.allclose(a, b)
  # The layers draw from distinct keys: two equal-shape layers are not copies of each other.
  same = layers.init_params(layers.dense_stack((4, 4, 4)), jax.random.PRNGKey(7))
  assert not np.allclose(same[0].w, same[1].w)


def test_init_refuses_unknown_init():
  with pytest.raises(ValueError, match="'xavier'"):
    layers.init_params(ARCH, jax.random.PRNGKey(0), init="xavier")


def test_zero_states():
  state = layers.zero_states(ARCH)
  chex.assert_trees_all_equal(state, (jnp.zeros(5), jnp.zeros(3)))
  batched = layers.zero_states(ARCH, (4, 2), jnp.float16)
  chex.assert_shape(batched, [(4, 2, 5), (4, 2, 3)])
  chex.assert_type(batched, jnp.float16)


def test_layer_currents_by_hand():
  """A 1-2-2-1 network: every free layer's drive, bias and feedback written out."""
  arch = layers.dense_stack((1, 2, 2, 1))
  w0, b0 = np.array([[0.5, -1.0]]), np.array([0.1, 0.2])
  w1, b1 = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([-0.1, -0.2])
  w2, b2 = np.array([[0.7], [-0.3]]), np.array([0.05])
  params = tuple(Layer(w=jnp.asarray(w, jnp.float32), b=jnp.asarray(b, jnp.float32))
                 for w, b in ((w0, b0), (w1, b1), (w2, b2)))
  x = 2.0
  h1, h2, o = np.array([0.3, 0.6]), np.array([0.9, 0.2]), np.array([0.4])
  drive = arch[0].forward(params[0], jnp.array([x]))
  currents = layers.layer_currents(arch, params, drive,
                                   tuple(jnp.asarray(a, jnp.float32) for a in (h1, h2, o)))
  expected = (
      # h1: x w0 + b0 + feedback from h2 through w1^T.
      [x * 0.5 + 0.1 + (1.0 * 0.9 + 2.0 * 0.2), x * -1.0 + 0.2 + (3.0 * 0.9 + 4.0 * 0.2)],
      # h2: h1 w1 + b1 + feedback from o through w2^T.
      [0.3 * 1.0 + 0.6 * 3.0 - 0.1 + 0.7 * 0.4, 0.3 * 2.0 + 0.6 * 4.0 - 0.2 - 0.3 * 0.4],
      # o: h2 w2 + b2, no feedback (the output is the top layer).
      [0.9 * 0.7 + 0.2 * -0.3 + 0.05])
  for got, want in zip(currents, expected):
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_check_params_refuses_a_mismatched_checkpoint():
  params = layers.init_params(ARCH, jax.random.PRNGKey(0))
  layers.check_params(ARCH, params)  # Its own parameters fit.
  with pytest.raises(ValueError, match="3 weight layers for an architecture of 2"):
    layers.check_params(ARCH, params + (params[-1],))
  with pytest.raises(ValueError, match="1 weight layers for an architecture of 2"):
    layers.check_params(ARCH, params[:1])
  wider = layers.init_params(layers.dense_stack((7, 6, 3)), jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match=r"layer 0: .*\(7, 6\).* 7 -> 5 layer"):
    layers.check_params(ARCH, wider)
  transposed = (params[0], Layer(w=params[1].w.T, b=params[1].b))
  with pytest.raises(ValueError, match=r"layer 1: .*\(3, 5\)"):
    layers.check_params(ARCH, transposed)
  bad_bias = (params[0], Layer(w=params[1].w, b=jnp.zeros(5)))
  with pytest.raises(ValueError, match=r"layer 1: .*\(5,\)"):
    layers.check_params(ARCH, bad_bias)


# ================================================================================================
# Convolution + average pooling, on flat states.
# ================================================================================================

CONV = layers.Conv(in_shape=(8, 8, 2), channels=3, kernel=3, pool=2)  # -> (3, 3, 3)


def _conv_params(seed=0):
  return CONV.init(jax.random.PRNGKey(seed), "uniform", 1.0)


def test_conv_shapes_and_fans_by_hand():
  assert CONV.out_shape == (3, 3, 3) and CONV.n_in == 128 and CONV.n_out == 27
  assert CONV.w_shape == (3, 3, 2, 3) and CONV.num_synapses == 54
  # The 3x3 kernel pooled 2x2 is a 4x4 kernel at stride 2: an interior unit reaches 2 x 2
  # pooled positions of 3 channels, and a pooled unit gets 4 x 4 inputs of 2 channels.
  assert CONV.fan_out == 12 and CONV.fan_in == 32
  p = _conv_params()
  assert p.w.shape == CONV.w_shape and p.b.shape == (27,)
  assert float(jnp.max(jnp.abs(p.w))) <= 1 / np.sqrt(18)
  with pytest.raises(ValueError, match="pooling must divide"):
    layers.Conv(in_shape=(8, 8, 1), channels=2, kernel=4, pool=2)


@pytest.mark.parametrize("conv", [CONV, layers.Conv((9, 9, 1), 2, kernel=4, pool=2),
                                  layers.Conv((5, 5, 2), 3, kernel=2, pool=1)])
def test_conv_fans_count_the_synapses_of_the_map(conv):
  """The fans are the nonzero entries of the map's Jacobian: a column of an interior unit
  (averaged over the interior when the pooling does not divide the effective kernel), a row."""
  p = conv.init(jax.random.PRNGKey(3), "uniform", 1.0)
  jac = np.asarray(jax.jacobian(lambda v: conv.forward(p, v))(jnp.zeros(conv.n_in))) != 0
  h, w, c = conv.in_shape
  # One period (pool x pool) of units a full effective kernel away from the top-left border.
  side = conv.kernel + conv.pool - 1
  period = range(side - 1, side - 1 + conv.pool)
  inner = [(i * w + j) * c + k for i in period for j in period for k in range(c)]
  assert np.mean(jac[:, inner].sum(0)) == pytest.approx(conv.fan_out)
  assert set(jac.sum(1)) == {conv.fan_in}


def test_conv_forward_by_hand():
  """One channel, a 2x2 kernel of ones, pooling 1: each output is the sum of a 2x2 window."""
  conv = layers.Conv(in_shape=(3, 3, 1), channels=1, kernel=2, pool=1)
  p = Layer(w=jnp.ones((2, 2, 1, 1)), b=jnp.zeros((4,)))
  x = jnp.arange(9.0)  # Row-major 3x3: [[0,1,2],[3,4,5],[6,7,8]].
  np.testing.assert_allclose(conv.forward(p, x), [8.0, 12.0, 20.0, 24.0])
  pooled = layers.Conv(in_shape=(3, 3, 1), channels=1, kernel=2, pool=2)
  np.testing.assert_allclose(pooled.forward(p, x), [16.0])  # The mean of the four.


def test_conv_transpose_is_the_exact_adjoint(x64):
  del x64
  p = jax.tree.map(lambda a: a.astype(jnp.float64), _conv_params())
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((4, CONV.n_in)))
  y = jnp.asarray(rng.standard_normal((4, CONV.n_out)))
  np.testing.assert_allclose(jnp.sum(CONV.forward(p, x) * y), jnp.sum(x * CONV.transpose(p, y)),
                             rtol=1e-12)
  by_jax = jax.linear_transpose(lambda v: CONV.forward(p, v), x)(y)[0]
  np.testing.assert_allclose(CONV.transpose(p, y), by_jax, rtol=1e-12, atol=1e-14)


def test_conv_outer_is_the_weight_gradient(x64):
  """outer(pre, post) = d/dw sum post . forward(pre), over a batch and over (batch, time)."""
  del x64
  p = jax.tree.map(lambda a: a.astype(jnp.float64), _conv_params())
  rng = np.random.default_rng(1)
  pre = jnp.asarray(rng.uniform(size=(2, 5, CONV.n_in)))
  post = jnp.asarray(rng.uniform(size=(2, 5, CONV.n_out)))
  grad = jax.grad(lambda w: jnp.sum(post * CONV.forward(p.replace(w=w), pre)))(p.w)
  np.testing.assert_allclose(CONV.outer(pre, post), grad, rtol=1e-12)
  np.testing.assert_allclose(CONV.outer(pre[:, 0], post[:, 0]),
                             jax.grad(lambda w: jnp.sum(post[:, 0] * CONV.forward(
                                 p.replace(w=w), pre[:, 0])))(p.w), rtol=1e-12)


def test_a_conv_network_runs_the_spiking_and_rate_dynamics():
  """[Conv, Dense] on flat states: the layer currents, a spiking phase and the rule's sums."""
  from eqspike_jax import spike_rule  # pylint: disable=g-import-not-at-top
  from eqspike_jax import spiking  # pylint: disable=g-import-not-at-top
  arch = (CONV, layers.Dense(CONV.n_out, 4))
  params = layers.init_params(arch, jax.random.PRNGKey(0))
  layers.check_params(arch, params)
  x = jax.random.uniform(jax.random.PRNGKey(1), (3, CONV.n_in))
  dyn = spiking.SpikingDynamics(gamma=0.5, t_free=6, t_nudge=3)
  _, s_in = spiking.input_trains(x, 6, dyn, None)
  drives = spiking.drives_of(arch, params, s_in, dyn)
  state0 = spiking.batched_rest_state(arch, 3)
  y = jax.nn.one_hot(jnp.array([0, 1, 2]), 4)
  _, trace = spiking.batched_phase(arch, params, drives, state0, y, 0.5, dyn, None)
  sums = spike_rule.Rule().sums(arch, params, s_in, trace)
  assert sums[0].w.shape == CONV.w_shape and sums[1].w.shape == (CONV.n_out, 4)
  assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(sums))
