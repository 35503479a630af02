"""A streamed free phase (no trace before its last steps) is the traced one, and its memory is flat."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqspike_jax import ep_core
from eqspike_jax import layers
from eqspike_jax import metrics as metrics_lib
from eqspike_jax import spike_rule
from eqspike_jax import spiking
from eqspike_jax.models import eqspike

SIZES = (12, 8, 6, 3)


def _model(spike_mode="deterministic", nudging="symmetric", readout="state", input_mode="spikes",
           stream=False):
  dyn = spiking.SpikingDynamics(gamma=0.3, t_free=25, t_nudge=7, spike_mode=spike_mode,
                                input_mode=input_mode)
  return eqspike.Model(arch=layers.dense_stack(SIZES), dyn=dyn, rule=spike_rule.Rule(gamma=0.3),
                       nudging=ep_core.Nudging(nudging, 0.5), readout=eqspike.Readout(readout, 5),
                       stream=stream)


def _problem():
  rng = np.random.default_rng(0)
  arch = layers.dense_stack(SIZES)
  params = layers.init_params(arch, jax.random.PRNGKey(3), scale=2.0)
  params = tuple(p.replace(w=p.w.astype(jnp.float64), b=p.b.astype(jnp.float64) + 0.3)
                 for p in params)
  x = jnp.asarray(rng.uniform(size=(5, SIZES[0])))
  y = jax.nn.one_hot(rng.integers(0, SIZES[-1], 5), SIZES[-1], dtype=jnp.float64)
  return params, x, y


CASES = [dict(), dict(spike_mode="stochastic"), dict(nudging="one_sided"),
         dict(readout="spike_count"), dict(input_mode="current")]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(c.values()) or "shipped")
def test_streamed_training_step_equals_the_traced_one(x64, case):
  del x64
  params, x, y = _problem()
  traced, streamed = _model(**case), _model(**case, stream=True)
  key = jax.random.PRNGKey(7)
  betas = traced.nudging.betas(key, x.dtype)
  g_t, m_t = ep_core.estimate_gradient(traced.estimate, traced.nudging, params, x, y, betas, key)
  g_s, m_s = ep_core.estimate_gradient(streamed.estimate, streamed.nudging, params, x, y, betas,
                                       key)
  chex.assert_trees_all_close(g_s, g_t, rtol=1e-10, atol=1e-12)
  flat_t, flat_s = metrics_lib.flatten(m_t), metrics_lib.flatten(m_s)
  assert set(flat_t) == set(flat_s)
  for name in flat_t:
    np.testing.assert_allclose(flat_s[name], flat_t[name], rtol=1e-10, atol=1e-12, err_msg=name)
  assert float(m_t["events"].free.spikes[1]) > 0  # The network is not silent.
  np.testing.assert_allclose(streamed.predict(params, x, key), traced.predict(params, x, key),
                             rtol=1e-10, atol=1e-12)


def test_streamed_free_phase_keeps_only_its_last_steps(x64):
  del x64
  params, x, _ = _problem()
  model = _model(nudging="one_sided", stream=True)
  free = model.free(params, x, jax.random.PRNGKey(0))
  assert free.s_in.shape[1] == model.dyn.t_nudge and free.trace.u[0].shape[1] == model.dyn.t_nudge
  full = eqspike.free_phase(model.arch, params, x, model.dyn, None)
  chex.assert_trees_all_close(free.state, full.state, rtol=1e-10, atol=1e-12)
  chex.assert_trees_all_close(free.trace, spiking.slice_time(full.trace, 18, 25), rtol=1e-10,
                              atol=1e-12)


@pytest.mark.slow
def test_streamed_memory_does_not_grow_with_the_free_phase(load_config):
  """XLA's temporaries of one compiled training step: flat in t_free when streamed."""
  # benchmarks.common defines no flags (two benchmark modules' flags would clash in one process).
  from benchmarks import common  # pylint: disable=g-import-not-at-top
  per_example = {}
  for stream in (False, True):
    for t_free in (40, 160):
      config = load_config("mnist_eqspike", "quick")
      config.t_free, config.steps_per_call, config.layer_sizes = t_free, 1, (784, 64, 10)
      config.eqspike.stream_free_phase = stream
      per_example[stream, t_free] = common.temp_bytes_per_example(config)[
          "temp_bytes_per_example"]
  assert per_example[False, 160] > 1.5 * per_example[False, 40], per_example
  assert per_example[True, 160] < 1.05 * per_example[True, 40], per_example
