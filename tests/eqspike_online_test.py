"""Online (per-step, chip-like) against accumulated application of the spike-driven rule."""

from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqspike_jax import config_lib
from eqspike_jax import layers
from eqspike_jax import optim
from eqspike_jax import registry
from eqspike_jax import train


def _flat_change(new, old):
  return jnp.concatenate([jnp.ravel(a - b) for a, b in zip(jax.tree.leaves(new),
                                                            jax.tree.leaves(old))])


def _config(nudging, free_contrast, spike_mode, t_free=30, t_nudge=10, pairing="next_step",
            debias=False):
  c = config_lib.base_config("eqspike")
  c.layer_sizes, c.t_free, c.t_nudge, c.beta, c.nudging = (12, 7, 3), t_free, t_nudge, 0.3, nudging
  c.eqspike.update(gamma=0.2, spike_mode=spike_mode, free_contrast=free_contrast,
                   pairing=pairing, debias=debias)
  c.optimizer = "sgd"
  return c


def _updates(c, lr, update_mode):
  """The update of ``c`` with SGD at rates ``(lr, 2 lr)`` (the rate may be traced)."""
  c = c.copy_and_resolve_references()
  c.update_mode = update_mode
  return registry.make_algorithm(c, optim.make_optimizer("sgd", (lr, 2 * lr))).update


def _params(c):
  arch = layers.dense_stack(c.layer_sizes)
  return jax.tree.map(lambda a: a.astype(jnp.float64),
                      layers.init_params(arch, jax.random.PRNGKey(3), scale=2.0))


class OnlineTest(parameterized.TestCase):
  # All slow (absl's parameterized methods do not carry a method's pytest mark).
  pytestmark = pytest.mark.slow

  @parameterized.named_parameters(
      ("symmetric_deterministic", "symmetric", True, "deterministic", "next_step", False),
      ("symmetric_stochastic", "symmetric", True, "stochastic", "next_step", False),
      ("one_sided_contrast", "one_sided", True, "deterministic", "next_step", False),
      ("one_sided_contrast_stochastic", "one_sided", True, "stochastic", "next_step", False),
      ("one_sided_raw", "one_sided", False, "deterministic", "next_step", False),
      ("same_step_debias", "symmetric", True, "deterministic", "same_step", True),
      ("random_sign", "random_sign", True, "stochastic", "next_step", False),
  )
  def test_online_equals_accumulated_to_first_order(self, nudging, free_contrast, spike_mode,
                                                    pairing, debias):
    c = _config(nudging, free_contrast, spike_mode, pairing=pairing, debias=debias)
    self._check_first_order(c)

  def test_online_with_a_nudged_phase_longer_than_the_free_phase(self):
    """Symmetric nudging needs no free-phase tail, so t_nudge > t_free is valid and must run
    (it failed inside lax.scan with a shape error before the redesign)."""
    c = _config("symmetric", True, "deterministic", t_free=6, t_nudge=9)
    config_lib.validate(c)
    self._check_first_order(c)

  def _check_first_order(self, c):
    with jax.enable_x64(True):
      params = _params(c)
      key = jax.random.PRNGKey(3)
      rng = np.random.default_rng(1)
      x = jnp.asarray(rng.random((5, 12)))
      y = jax.nn.one_hot(jnp.arange(5) % 3, 3, dtype=jnp.float64)

      @jax.jit
      def changes(lr):  # The rate is traced: one compilation serves every rate.
        opt = optim.make_optimizer("sgd", (lr, 2 * lr))
        opt_state = opt.init(params)
        p_acc, _, _ = _updates(c, lr, "accumulated")(params, opt_state, x, y, key)
        p_onl, _, metrics = _updates(c, lr, "online")(params, opt_state, x, y, key)
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
      self.assertGreater(float(metrics["events"].nudged.synaptic_updates), 0.0)

  def test_online_event_counts_match_accumulated(self):
    c = _config("symmetric", True, "deterministic", t_free=15, t_nudge=5)
    c.layer_sizes = (9, 6, 4)
    params = layers.init_params(layers.dense_stack(c.layer_sizes), jax.random.PRNGKey(0),
                                scale=2.0)
    x = jnp.asarray(np.random.default_rng(0).random((3, 9)), jnp.float32)
    y = jax.nn.one_hot(jnp.arange(3) % 4, 4)
    key = jax.random.PRNGKey(0)
    opt = optim.make_optimizer("sgd", (1e-9, 1e-9))  # Weights barely move: same spikes.
    m = {mode: jax.jit(_updates(c, 1e-9, mode))(params, opt.init(params), x, y, key)[2]
         for mode in ("accumulated", "online")}
    for name in ("free", "nudged"):
      jax.tree.map(np.testing.assert_allclose, getattr(m["online"]["events"], name),
                   getattr(m["accumulated"]["events"], name))
    np.testing.assert_allclose(m["online"]["loss"], m["accumulated"]["loss"])

  def test_online_optimizer_schedule_counts_nudged_steps(self):
    """A cosine schedule of an online run spans one optimizer step per nudged step."""
    c = _config("symmetric", True, "deterministic")
    c.update(update_mode="online", lr_schedule="cosine", learning_rates=(1.0, 1.0))
    _, optimizer = train.make_algorithm(c, total_steps=3)
    params = layers.init_params(layers.dense_stack(c.layer_sizes), jax.random.PRNGKey(3))
    state = optimizer.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    total = 3 * c.t_nudge  # Optimizer steps in the run; a schedule over 3 would be 0 by now.
    for _ in range(total):
      updates, state = optimizer.update(grads, state, params)
    # SGD's update is -rate; the last rate of a cosine decay over `total` steps, by hand.
    expected = 0.5 * (1 + np.cos(np.pi * (total - 1) / total))
    np.testing.assert_allclose(jax.tree.leaves(updates)[0], -expected, rtol=1e-4)


if __name__ == "__main__":
  import absl.testing.absltest
  absl.testing.absltest.main()
