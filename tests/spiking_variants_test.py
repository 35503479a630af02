"""jit against no jit on the public maths functions of the spiking model (chex variants)."""

import functools

import chex
from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from eqspike_jax import events
from eqspike_jax import layers
from eqspike_jax import spike_rule
from eqspike_jax import spiking

SIZES = (7, 5, 3)  # != batch 4, != steps 6.
BATCH, STEPS = 4, 6
DYN = spiking.SpikingDynamics(gamma=0.3, t_free=STEPS, t_nudge=STEPS)


def _problem():
  rng = np.random.default_rng(0)
  arch = layers.dense_stack(SIZES)
  params = layers.init_params(arch, jax.random.PRNGKey(0), scale=2.0)
  x = jnp.asarray(rng.uniform(size=(BATCH, SIZES[0])), jnp.float32)
  y = jax.nn.one_hot(jnp.arange(BATCH) % SIZES[-1], SIZES[-1])
  return arch, params, x, y


class SpikingVariantsTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_neuron_step(self):
    state = spiking.NeuronState(u=jnp.array([0.2, 0.9, 0.0]), e=jnp.array([0.5, 0.3, 0.99]),
                                spikes=jnp.zeros(3))
    step = self.variant(functools.partial(spiking.neuron_step, gamma=0.3, stochastic=False))
    new, spikes = step(state, jnp.array([1.5, -0.2, 0.1]))
    # u = clip(0.7 u + 0.3 I): 0.59, 0.57, 0.03; e + u: 1.09 -> spike, 0.87, 1.02 -> spike.
    np.testing.assert_allclose(new.u, [0.59, 0.57, 0.03], atol=1e-6)
    np.testing.assert_array_equal(spikes, [1.0, 0.0, 1.0])
    np.testing.assert_allclose(new.e, [0.09, 0.87, 0.02], atol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_encode(self):
    encode = self.variant(functools.partial(spiking.encode, num_steps=STEPS, stochastic=False))
    e, trains = encode(jnp.array([0.4, 1.0, 0.0, 0.5]))
    chex.assert_shape(trains, (STEPS, 4))
    np.testing.assert_array_equal(trains[:, 0], [0, 0, 1, 0, 1, 0])
    np.testing.assert_allclose(e, [0.4, 0.0, 0.0, 0.0], atol=1e-6)

  def test_encoder_continued_equals_one_encoder(self):
    """The nudged phases continue the free phase's trains: 6 steps then 4 from the state at 6
    give the 10-step train, for deterministic and (per-step keys) stochastic spikes."""
    x = jnp.asarray(np.random.default_rng(1).uniform(size=(5,)), jnp.float32)
    for stochastic in (False, True):
      key = jax.random.PRNGKey(3) if stochastic else None
      _, whole = spiking.encode(x, 10, stochastic, key)
      e6, head = spiking.encode(x, 6, stochastic, key)
      _, tail = spiking.encode(x, 4, stochastic, key, e0=e6, start=6)
      np.testing.assert_array_equal(jnp.concatenate([head, tail]), whole)

  @chex.variants(with_jit=True, without_jit=True)
  def test_batched_phase_and_rule(self):
    arch, params, x, y = _problem()

    def phase_and_rule(params, x, y):
      _, s_in = spiking.input_trains(x, STEPS, DYN, None)
      drives = spiking.drives_of(arch, params, s_in, DYN)
      state0 = spiking.batched_rest_state(arch, BATCH)
      state, trace = spiking.batched_phase(arch, params, drives, state0, y, 0.5, DYN, None)
      sums = spike_rule.Rule("next_step").sums(arch, params, s_in, trace)
      counts = events.phase_events(arch, s_in, trace.emitted, trace.emitted)
      return state, trace, sums, counts

    eager = phase_and_rule(params, x, y)
    staged = self.variant(phase_and_rule)(params, x, y)
    chex.assert_trees_all_close(staged, eager, atol=1e-6)
    chex.assert_shape(eager[1].du[0], (BATCH, STEPS, SIZES[1]))
    assert float(eager[3].synaptic_ops) > 0


if __name__ == "__main__":
  absltest.main()
