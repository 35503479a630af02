"""Online (per-step, chip-like) against accumulated application of the spike-driven rule."""

import functools

from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from eqspike_jax import eqspike
from eqspike_jax import network
from eqspike_jax import optim


def _flat_change(new, old):
  return jnp.concatenate([jnp.ravel(a - b) for a, b in zip(jax.tree.leaves(new),
                                                            jax.tree.leaves(old))])


class OnlineTest(parameterized.TestCase):

  @parameterized.product(
      nudging_contrast=[("symmetric", True), ("one_sided", True), ("one_sided", False)],
      spike_mode=["deterministic", "stochastic"])
  def test_online_equals_accumulated_to_first_order(self, nudging_contrast, spike_mode):
    nudging, free_contrast = nudging_contrast
    with jax.enable_x64(True):
      key = jax.random.PRNGKey(3)
      params = jax.tree.map(lambda a: a.astype(jnp.float64),
                            network.init_params(key, (12, 7, 3), scale=2.0))
      rng = np.random.default_rng(1)
      x = jnp.asarray(rng.random((5, 12)))
      y = jax.nn.one_hot(jnp.arange(5) % 3, 3, dtype=jnp.float64)
      dyn = eqspike.SpikingDynamics(gamma=0.2, t_free=30, t_nudge=10, spike_mode=spike_mode)

      @jax.jit
      def changes(lr):  # The rate is traced: one compilation serves every rate.
        opt = optim.make_optimizer("sgd", (lr, 2 * lr))
        opt_state = opt.init(params)
        kwargs = dict(dyn=dyn, beta=0.3, nudging=nudging, free_contrast=free_contrast,
                      optimizer=opt)
        p_acc, _, _ = eqspike.accumulated_update(params, opt_state, x, y, key, **kwargs)
        p_onl, _, metrics = eqspike.online_update(params, opt_state, x, y, key, **kwargs)
        return _flat_change(p_acc, params), _flat_change(p_onl, params), metrics

      errors = []
      for lr in (1e-3, 1e-4, 1e-5):
        d_acc, d_onl, metrics = changes(jnp.float64(lr))
        self.assertGreater(float(jnp.linalg.norm(d_acc)), 0.0)
        errors.append(float(jnp.linalg.norm(d_onl - d_acc) / jnp.linalg.norm(d_acc)))
      # First order in the learning rate: the relative gap shrinks ~10x per 10x smaller rate and
      # is already small at the largest rate (the weights move little within one phase).
      self.assertLess(errors[0], 0.02)
      self.assertLess(errors[1], 0.2 * errors[0])
      self.assertLess(errors[2], 0.2 * errors[1])
      self.assertIn("events/nudged/synaptic_updates", metrics)

  def test_online_event_counts_match_accumulated(self):
    key = jax.random.PRNGKey(0)
    params = network.init_params(key, (9, 6, 4), scale=2.0)
    x = jnp.asarray(np.random.default_rng(0).random((3, 9)), jnp.float32)
    y = jax.nn.one_hot(jnp.arange(3) % 4, 4)
    dyn = eqspike.SpikingDynamics(gamma=0.3, t_free=15, t_nudge=5)
    opt = optim.make_optimizer("sgd", (1e-9, 1e-9))  # Weights barely move: same spikes.
    kwargs = dict(dyn=dyn, beta=0.2, nudging="symmetric", free_contrast=True, optimizer=opt)
    _, _, m_acc = jax.jit(functools.partial(eqspike.accumulated_update, **kwargs))(
        params, opt.init(params), x, y, key)
    _, _, m_onl = jax.jit(functools.partial(eqspike.online_update, **kwargs))(
        params, opt.init(params), x, y, key)
    for name in m_acc:
      if name.startswith("events/"):
        np.testing.assert_allclose(m_onl[name], m_acc[name], err_msg=name)


if __name__ == "__main__":
  import absl.testing.absltest
  absl.testing.absltest.main()
