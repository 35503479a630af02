"""FLOP counts of one EP training step: by hand on a tiny network, and against the traced code."""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp

from eqspike_jax import config_lib
from eqspike_jax import flops
from eqspike_jax import layers
from eqspike_jax import train


def tiny_config(layer_sizes=(3, 2, 2), nudging="one_sided", update_mode="accumulated",
                t_free=2, t_nudge=1, batch_size=5):
  c = config_lib.base_config("rate_ep")
  c.layer_sizes = layer_sizes
  c.learning_rates = (1e-3,) * (len(layer_sizes) - 1)
  c.nudging = nudging
  c.update_mode = update_mode
  c.optimizer = "sgd" if update_mode == "online" else "adam"
  c.t_free = t_free
  c.t_nudge = t_nudge
  c.batch_size = batch_size
  config_lib.validate(c)
  return c


class EpStepFlopsByHandTest(parameterized.TestCase):
  """Network 3-2-2, T_free 2, T_nudge 1. Per example:

  input drive x@W0 (3x2): 2*3*2 = 12. Per time step, W1 (2x2) forward into the output and W1^T
  back into the hidden layer: 2*2*2 + 2*2*2 = 16. Update: x^T d for W0 = 12, two outer products
  for W1 = 2 * 8 = 16, so 28. Activations: 2 + 2 = 4 per time step.
  """

  def test_one_sided(self):
    # 2 free + 1 nudged steps.
    self.assertEqual(flops.ep_step_flops(tiny_config()), {
        "input_drive": 12, "dynamics": 3 * 16, "update": 28, "total": 12 + 48 + 28,
        "time_steps": 3, "activation_evals": 3 * 4})

  def test_random_sign_costs_as_one_sided(self):
    self.assertEqual(flops.ep_step_flops(tiny_config(nudging="random_sign")),
                     flops.ep_step_flops(tiny_config()))

  def test_symmetric(self):
    # 2 free + 2 nudged phases of 1 step; still one contrast.
    self.assertEqual(flops.ep_step_flops(tiny_config(nudging="symmetric")), {
        "input_drive": 12, "dynamics": 4 * 16, "update": 28, "total": 12 + 64 + 28,
        "time_steps": 4, "activation_evals": 4 * 4})

  def test_online(self):
    # C-EP recomputes the drive and takes a contrast at each of the T_nudge = 1 nudged steps.
    self.assertEqual(flops.ep_step_flops(tiny_config(update_mode="online")), {
        "input_drive": 12 + 12, "dynamics": 3 * 16, "update": 28, "total": 24 + 48 + 28,
        "time_steps": 3, "activation_evals": 3 * 4})

  def test_independent_of_batch_size(self):
    self.assertEqual(flops.ep_step_flops(tiny_config(batch_size=1)),
                     flops.ep_step_flops(tiny_config(batch_size=50)))


def traced_update_cost(c) -> flops.JaxprCost:
  """The cost of one traced ``algorithm.update`` of config ``c`` on a batch of ones.

  The update is the trainer's (``train.make_algorithm``), with the signature the train chunk
  calls: ``(params, opt_state, x, y, key, axis_name=None)``.
  """
  algorithm, optimizer = train.make_algorithm(c, total_steps=1)
  state = train.init_state(c, algorithm, optimizer)
  x = jnp.ones((c.batch_size, c.layer_sizes[0]))
  y = jax.nn.one_hot(jnp.zeros((c.batch_size,), jnp.int32), c.layer_sizes[-1])
  jaxpr = jax.make_jaxpr(algorithm.update)(state.params, state.opt_state, x, y,
                                           jax.random.PRNGKey(0))
  return flops.jaxpr_cost(jaxpr)


class EpStepFlopsMatchesTracedCodeTest(parameterized.TestCase):
  """The hand count equals the products (and sigmoids) in the traced ``algorithm.update``."""

  @parameterized.parameters(
      ((3, 2, 2), "one_sided", "accumulated"),
      ((3, 2, 2), "symmetric", "accumulated"),
      ((5, 4, 3, 2), "one_sided", "accumulated"),
      ((5, 4, 3, 2), "random_sign", "accumulated"),
      ((5, 4, 3, 2), "symmetric", "accumulated"),
      ((5, 4, 3, 2), "one_sided", "online"),
      ((6, 2), "symmetric", "accumulated"),
  )
  def test_matches_jaxpr(self, layer_sizes, nudging, update_mode):
    c = tiny_config(layer_sizes, nudging, update_mode, t_free=4, t_nudge=3, batch_size=7)
    cost = traced_update_cost(c)
    expected = flops.ep_step_flops(c)
    self.assertEqual(cost.dot_flops, expected["total"] * c.batch_size)
    # sigmoid4 evaluates one logistic per activation.
    self.assertEqual(cost.elements["logistic"], expected["activation_evals"] * c.batch_size)

  def test_step_matmuls_sum_to_total(self):
    c = tiny_config((5, 4, 3, 2), "symmetric", batch_size=7)
    total = sum(mm.flops for mm in flops.step_matmuls(c))
    self.assertEqual(total, flops.ep_step_flops(c)["total"] * c.batch_size)


class EqSpikeFlopsMatchesTracedCodeTest(parameterized.TestCase):
  """The EqSpike count equals the products in the traced ``algorithm.update``, every variant."""

  @parameterized.product(
      layer_sizes=[(6, 5, 4, 3)],  # Two hidden layers: every kind of product appears.
      nudging_contrast=[("symmetric", True), ("one_sided", True), ("one_sided", False)],
      update_mode=["accumulated", "online"],
      input_mode=["spikes", "current"],
      debias=[False, True])
  def test_matches_jaxpr(self, layer_sizes, nudging_contrast, update_mode, input_mode, debias):
    c = config_lib.base_config("eqspike")
    c.layer_sizes, c.update_mode, c.optimizer = layer_sizes, update_mode, "sgd"
    c.nudging, c.eqspike.free_contrast = nudging_contrast
    c.eqspike.input_mode, c.eqspike.debias = input_mode, debias
    # debias removes the self-coupling of same-step pairing, the only pairing that has one.
    c.eqspike.pairing = "same_step" if debias else "next_step"
    c.t_free, c.t_nudge, c.batch_size = 6, 3, 7
    c.learning_rates = (1e-3,) * (len(layer_sizes) - 1)
    config_lib.validate(c)
    self.assertEqual(traced_update_cost(c).dot_flops,
                     flops.ep_step_flops(c)["total"] * c.batch_size)

  @parameterized.parameters("accumulated", "online")
  def test_stochastic_spikes_cost_as_deterministic(self, update_mode):
    # Random streams add key arithmetic, no products: the same count must hold the traced code.
    c = config_lib.base_config("eqspike")
    c.layer_sizes, c.update_mode, c.optimizer = (6, 5, 4, 3), update_mode, "sgd"
    c.eqspike.spike_mode, c.nudging = "stochastic", "random_sign"
    c.t_free, c.t_nudge, c.batch_size = 6, 3, 7
    c.learning_rates = (1e-3,) * 3
    config_lib.validate(c)
    self.assertEqual(traced_update_cost(c).dot_flops,
                     flops.ep_step_flops(c)["total"] * c.batch_size)

  def test_step_matmuls_sum_to_total(self):
    c = config_lib.base_config("eqspike")
    c.layer_sizes, c.t_free, c.t_nudge, c.batch_size = (6, 5, 4, 3), 6, 3, 7
    c.learning_rates = (1e-3,) * 3
    total = sum(mm.flops for mm in flops.step_matmuls(c))
    self.assertEqual(total, flops.ep_step_flops(c)["total"] * c.batch_size)


class JaxprCostTest(absltest.TestCase):

  def test_scan_counts_its_length(self):
    def f(w, x):
      return jax.lax.scan(lambda s, _: (jnp.tanh(s @ w), None), x, None, length=6)[0]
    cost = flops.jaxpr_cost(jax.make_jaxpr(f)(jnp.ones((4, 4)), jnp.ones((2, 4))))
    self.assertEqual(cost.dot_flops, 6 * 2 * 2 * 4 * 4)
    self.assertEqual(cost.elements["tanh"], 6 * 2 * 4)

  def test_refuses_while_loop(self):
    def f(x):
      return jax.lax.while_loop(lambda c: c[0, 0] < 10.0, lambda c: c @ c, x)
    with self.assertRaisesRegex(ValueError, "while_loop"):
      flops.jaxpr_cost(jax.make_jaxpr(f)(jnp.ones((2, 2))))


if __name__ == "__main__":
  absltest.main()


class ConvFlopsMatchesTracedCodeTest(parameterized.TestCase):
  """Convolutions: the analytic count (layers.Conv.products) equals the traced products."""

  @parameterized.parameters(
      ("eqspike", 1, "next_step", 0), ("eqspike", 2, "next_step", 0),
      ("eqspike", 1, "state", 0), ("eqspike", 2, "state", 2), ("rate_ep", 1, "", 0),
      ("rate_ep", 2, "", 0))
  def test_matches_jaxpr(self, model, pool, pairing, window):
    c = config_lib.base_config(model)
    c.input_shape, c.layer_sizes = (6, 6, 1), (36, 3)
    c.conv_layers = ((2, 3, pool), (3, 2, 1))  # Two convolutions: forward and feedback.
    c.nudging, c.t_free, c.t_nudge, c.batch_size = "symmetric", 4, 3, 5
    c.learning_rates = (1e-3,) * 3
    if model == "eqspike":
      c.eqspike.pairing, c.eqspike.window = pairing, window
    config_lib.validate(c)
    self.assertEqual(traced_update_cost(c).dot_flops,
                     flops.ep_step_flops(c)["total"] * c.batch_size)

  def test_pooled_convolution_by_hand(self):
    """A 3x3 kernel on 6x6x1 gives 4x4, pooled 2x2: 4 positions x 9 taps x 2 channels."""
    layer = layers.Conv((6, 6, 1), channels=2, kernel=3, pool=2)
    self.assertEqual(layer.products(5), {"forward": (20, 9, 2), "transpose": (20, 2, 9),
                                         "outer": (9, 20, 2)})
