"""Spiking neurons and the spiking network's dynamics (EQSPIKE.md section 3), one example.

Every free neuron keeps a state ``u`` in [0, 1] and talks to the others only through binary spikes:

* integration: ``u <- clip((1 - gamma) u + gamma I, 0, 1)`` with ``I_l = forward(S_{l-1}) +
  transpose(S_{l+1}) + b_l`` (plus ``beta (y - u_o)`` at the output in a nudged phase);
* spikes: sigma-delta (``e <- e + u; S = [e >= 1]; e <- e - S``, so the firing rate is ``u``), or
  ``S ~ Bernoulli(u)`` from its own random stream.

Time convention of one step ``t``: the spikes ``S(t)`` emitted at the end of the previous step
drive the integration ``u(t) -> u(t+1)``, then every neuron emits ``S(t+1)`` from ``u(t+1)``. The
dynamics record both (``Trace.received`` and ``Trace.emitted``) and the state change; which of
them a learning rule pairs is the rule's business (``spike_rule``).

Randomness: the key of step ``t`` is ``fold_in(key, t)`` with ``t`` counted from the start of the
free phase, so a stream never depends on how long a phase is, and two phases that cover the same
times with the same key (the +beta and -beta phases of symmetric nudging) draw the same spikes.
"""

import dataclasses
import functools
from typing import Optional, Tuple

import chex
import flax
import jax
import jax.numpy as jnp

from eqspike_jax import layers
from eqspike_jax import quantize
from eqspike_jax import surrogate as surrogate_lib
from eqspike_jax.layers import Architecture
from eqspike_jax.network import Params

# "rate": every spike replaced by its rate, u itself (the noise-free twin of the network).
SPIKE_MODES = ("deterministic", "stochastic", "rate")
INPUT_MODES = ("spikes", "current")


@dataclasses.dataclass(frozen=True)
class SpikingDynamics:
  """Static settings of the spiking dynamics (hashable, so usable under jit)."""
  gamma: float = 0.2              # dt / tau: the leak and integration rate, in (0, 1].
  t_free: int = 60
  t_nudge: int = 20
  spike_mode: str = "deterministic"
  input_mode: str = "spikes"      # Pixels as spike trains (what a chip receives) or as current.
  unroll: int = 1
  # BPTT only: the spike's surrogate derivative (None: spikes are not differentiated through).
  surrogate: Optional[surrogate_lib.Surrogate] = None
  state_bits: int = 0             # u held on 2^k levels (nearest); 0 = float.

  @property
  def stochastic(self) -> bool:
    return self.spike_mode == "stochastic"

  @property
  def rate(self) -> bool:
    return self.spike_mode == "rate"

  @property
  def current_input(self) -> bool:
    """The input drive is constant: pixels as current, or every spike replaced by its rate."""
    return self.input_mode == "current" or self.rate


@flax.struct.dataclass
class NeuronState:
  """A layer of spiking neurons (one example)."""
  u: chex.Array       # [n] state (membrane / rate variable), in [0, 1].
  e: chex.Array       # [n] sigma-delta accumulator, in [0, 1); unused by stochastic spikes.
  spikes: chex.Array  # [n] spikes emitted at the end of the last step, 0. or 1.


NetworkState = Tuple[NeuronState, ...]  # One per free layer.


@flax.struct.dataclass
class Trace:
  """What happened at each step of a phase, per free layer, ``[T, n_l]`` per example."""
  received: Tuple[chex.Array, ...]  # S_l(t): the spikes that drove step t.
  emitted: Tuple[chex.Array, ...]   # S_l(t+1): the spikes emitted at the end of step t.
  u: Tuple[chex.Array, ...]         # u_l(t), the state at the start of step t.
  du: Tuple[chex.Array, ...]        # u_l(t+1) - u_l(t).


def emit(e: chex.Array, u: chex.Array, stochastic: bool, key: Optional[chex.PRNGKey],
         rate: bool = False, surrogate: Optional[surrogate_lib.Surrogate] = None
         ) -> Tuple[chex.Array, chex.Array]:
  """Spikes at rate ``u``; returns the new accumulator and the spikes (0./1.).

  ``rate`` emits ``u`` itself (no spikes); ``surrogate`` gives the spikes a derivative.
  """
  chex.assert_equal_shape([e, u])
  if rate:
    return e, u
  if stochastic:
    draws = jax.random.bernoulli(key, u).astype(u.dtype)
    return e, draws if surrogate is None else surrogate.stochastic(draws, u)
  e = e + u
  spikes = (e >= 1.0).astype(u.dtype) if surrogate is None else surrogate.deterministic(e)
  return e - spikes, spikes


def neuron_step(state: NeuronState, current: chex.Array, gamma: float, stochastic: bool,
                key: Optional[chex.PRNGKey] = None, rate: bool = False,
                surrogate: Optional[surrogate_lib.Surrogate] = None, state_bits: int = 0
                ) -> Tuple[NeuronState, chex.Array]:
  """Leaky integration of ``current`` then spike emission: ``(state, input) -> (state, spikes)``."""
  chex.assert_equal_shape([state.u, current])
  u = jnp.clip((1.0 - gamma) * state.u + gamma * current, 0.0, 1.0)
  u = quantize.quantize_state(u, state_bits)
  e, spikes = emit(state.e, u, stochastic, key, rate, surrogate)
  return NeuronState(u=u, e=e, spikes=spikes), spikes


def rest_state(n: int, dtype=jnp.float32) -> NeuronState:
  zeros = jnp.zeros((n,), dtype)
  return NeuronState(u=zeros, e=zeros, spikes=zeros)


def step_keys(key: Optional[chex.PRNGKey], start: int, num_steps: int):
  """``fold_in(key, t)`` for ``t = start .. start + num_steps - 1``; None without a key."""
  if key is None:
    return None
  return jax.vmap(functools.partial(jax.random.fold_in, key))(jnp.arange(start, start + num_steps))


def encode(x: chex.Array, num_steps: int, stochastic: bool, key: Optional[chex.PRNGKey] = None,
           e0: Optional[chex.Array] = None, start: int = 0) -> Tuple[chex.Array, chex.Array]:
  """Spike trains at rates ``x``: ``(accumulator, spikes [num_steps, n])``, one example.

  An encoder continued from ``e0`` at time ``start`` gives the trains it would have given had
  it run from 0 in one go: the free and nudged phases share one input train.
  """
  chex.assert_rank(x, 1)

  def body(e, key_t):
    return emit(e, x, stochastic, key_t)

  keys = step_keys(key, start, num_steps) if stochastic else None
  e0 = jnp.zeros_like(x) if e0 is None else e0
  return jax.lax.scan(body, e0, keys, length=num_steps)


def network_step(arch: Architecture, params: Params, drive: chex.Array, state: NetworkState,
                 y: chex.Array, beta: Optional[chex.Numeric], dyn: SpikingDynamics,
                 key: Optional[chex.PRNGKey]) -> Tuple[NetworkState, Trace]:
  """One synchronous step of every free layer of one example.

  Args:
    arch: the layers.
    params: the network.
    drive: this step's input drive ``forward(S_x(t))`` (or ``forward(x)``), ``[n_1]``.
    state: every free layer; its ``spikes`` are ``S(t)``.
    y: one-hot target ``[n_out]``.
    beta: nudging strength; None in the free phase (no nudge term).
    dyn: the dynamics.
    key: this step's key (stochastic spikes only).

  Returns:
    The new state and this step's record (one step of a ``Trace``).
  """
  chex.assert_rank([drive, y], 1)
  chex.assert_equal_shape([drive, state[0].u])
  chex.assert_equal_shape([y, state[-1].u])
  n = len(state)
  keys = jax.random.split(key, n) if dyn.stochastic else [None] * n
  received = tuple(layer.spikes for layer in state)
  currents = list(layers.layer_currents(arch, params, drive, received))
  if beta is not None:
    currents[-1] = currents[-1] + beta * (y - state[-1].u)
  new_state = tuple(neuron_step(s, c, dyn.gamma, dyn.stochastic, k, dyn.rate, dyn.surrogate,
                                dyn.state_bits)[0]
                    for s, c, k in zip(state, currents, keys))
  return new_state, Trace(received=received, emitted=tuple(s.spikes for s in new_state),
                          u=tuple(s.u for s in state),
                          du=tuple(new.u - old.u for new, old in zip(new_state, state)))


def run_phase(arch: Architecture, params: Params, drives: chex.Array, state0: NetworkState,
              y: chex.Array, beta: Optional[chex.Numeric], dyn: SpikingDynamics,
              key: Optional[chex.PRNGKey], start: int = 0) -> Tuple[NetworkState, Trace]:
  """Runs one example for ``len(drives)`` steps from time ``start``: end state and trace."""
  chex.assert_rank(drives, 2)
  keys = step_keys(key, start, drives.shape[0]) if dyn.stochastic else None

  def body(state, xs):
    drive_t, key_t = xs
    return network_step(arch, params, drive_t, state, y, beta, dyn, key_t)

  return jax.lax.scan(body, state0, (drives, keys), unroll=dyn.unroll)


def example_keys(key: Optional[chex.PRNGKey], batch: int, dyn: SpikingDynamics):
  """Each example's own stream (stochastic spikes); None for deterministic ones."""
  return jax.random.split(key, batch) if dyn.stochastic else None


def batched_phase(arch: Architecture, params: Params, drives: chex.Array, state0: NetworkState,
                  y: chex.Array, beta: Optional[chex.Numeric], dyn: SpikingDynamics,
                  key: Optional[chex.PRNGKey], start: int = 0) -> Tuple[NetworkState, Trace]:
  """``run_phase`` over a batch: params, beta and dyn shared; each example its own stream."""
  phase = lambda d, s, t, k: run_phase(arch, params, d, s, t, beta, dyn, k, start)
  keys = example_keys(key, drives.shape[0], dyn)
  return jax.vmap(phase, in_axes=(0, 0, 0, 0 if dyn.stochastic else None))(
      drives, state0, y, keys)


def input_trains(x: chex.Array, num_steps: int, dyn: SpikingDynamics,
                 key: Optional[chex.PRNGKey], e0: Optional[chex.Array] = None,
                 start: int = 0) -> Tuple[chex.Array, chex.Array]:
  """The batch's input trains ``[B, T, n_0]`` from time ``start`` and the encoder state after.

  Current input: the pixel values themselves at every step (the encoder state is unused).
  """
  chex.assert_rank(x, 2)
  if dyn.current_input:
    return jnp.zeros_like(x), jnp.broadcast_to(x[:, None, :], (x.shape[0], num_steps, x.shape[1]))
  keys = example_keys(key, x.shape[0], dyn)
  e0 = jnp.zeros_like(x) if e0 is None else e0
  encode_fn = lambda xi, ki, ei: encode(xi, num_steps, dyn.stochastic, ki, ei, start)
  return jax.vmap(encode_fn, in_axes=(0, 0 if dyn.stochastic else None, 0))(x, keys, e0)


def drives_of(arch: Architecture, params: Params, s_in: chex.Array,
              dyn: SpikingDynamics) -> chex.Array:
  """Every step's input drive ``forward(S_x(t))``, ``[B, T, n_1]``, as one product.

  The input does not depend on the network, so its trains are drawn before a phase and the
  drives of all its steps come from one product over (batch, time) instead of T small ones.
  """
  chex.assert_rank(s_in, 3)
  if dyn.current_input:  # Constant: one product per example.
    drive = arch[0].forward(params[0], s_in[:, 0])
    return jnp.broadcast_to(drive[:, None, :], s_in.shape[:2] + drive.shape[-1:])
  return arch[0].forward(params[0], s_in)


def streamed_run(arch: Architecture, params: Params, x: chex.Array, state0: NetworkState,
                 e0: chex.Array, dyn: SpikingDynamics, k_in: Optional[chex.PRNGKey],
                 k_net: Optional[chex.PRNGKey], num_steps: int
                 ) -> Tuple[NetworkState, chex.Array, Tuple[chex.Array, ...]]:
  """A free phase of one example from time 0 that keeps no trace: memory does not grow with T.

  Each step draws its input spikes, computes their drive and runs ``network_step`` with the
  keys the traced phase uses (``fold_in(key, t)``), so it is the same phase; only the drive's
  summation order differs (one product per step instead of one over all steps). Returns the end
  state, the encoder state and every layer's spike count (the input first).
  """
  chex.assert_rank(x, 1)
  y_unused = jnp.zeros((arch[-1].n_out,), x.dtype)
  constant_drive = arch[0].forward(params[0], x) if dyn.current_input else None

  def body(carry, t):
    state, e, counts = carry
    if dyn.current_input:
      s_in, drive = x, constant_drive
    else:
      e, s_in = emit(e, x, dyn.stochastic, jax.random.fold_in(k_in, t) if dyn.stochastic else None)
      drive = arch[0].forward(params[0], s_in)
    key_t = jax.random.fold_in(k_net, t) if dyn.stochastic else None
    state, record = network_step(arch, params, drive, state, y_unused, None, dyn, key_t)
    counts = tuple(c + jnp.sum(a) for c, a in zip(counts, (s_in,) + record.emitted))
    return (state, e, counts), None

  counts0 = tuple(jnp.zeros((), x.dtype) for _ in range(len(arch) + 1))
  (state, e, counts), _ = jax.lax.scan(body, (state0, e0, counts0), jnp.arange(num_steps),
                                       unroll=dyn.unroll)
  return state, e, counts


def batched_streamed_run(arch, params, x, dyn, k_in, k_net, num_steps):
  """``streamed_run`` over a batch from rest, each example with its own streams."""
  batch = x.shape[0]
  state0 = batched_rest_state(arch, batch, x.dtype)
  keys = [example_keys(k, batch, dyn) for k in (k_in, k_net)]
  axis = 0 if dyn.stochastic else None
  fn = lambda xi, si, ki, kn: streamed_run(arch, params, xi, si, jnp.zeros_like(xi), dyn, ki, kn,
                                           num_steps)
  return jax.vmap(fn, in_axes=(0, 0, axis, axis))(x, state0, *keys)


def batched_rest_state(arch: Architecture, batch: int, dtype=jnp.float32) -> NetworkState:
  return tuple(jax.tree.map(lambda a: jnp.broadcast_to(a, (batch,) + a.shape),
                            rest_state(layer.n_out, dtype)) for layer in arch)


def slice_time(tree, start: int, stop: int):
  """Steps ``start:stop`` of batch-major ``[B, T, ...]`` arrays."""
  return jax.tree.map(lambda a: a[:, start:stop], tree)
