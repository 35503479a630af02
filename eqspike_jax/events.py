"""Event counts of the spiking network, typed: the inputs of the energy model (EQSPIKE.md 4).

The counts travel as ``PhaseEvents`` / ``StepEvents`` pytrees from the training step to the
trainer and the energy model; they become strings only at the logging boundary
(``metrics.flatten``), and ``StepEvents.from_flat`` reads them back from a run summary, so the
names are written in one place.
"""

from typing import Mapping, Optional, Tuple

import chex
import flax
import jax
import jax.numpy as jnp

from eqspike_jax.layers import Architecture


@flax.struct.dataclass
class PhaseEvents:
  """Per-example counts of one phase (or the sum of several), averaged over the batch."""
  spikes: Tuple[chex.Array, ...]  # Spikes of every layer, the input first.
  synaptic_ops: chex.Array        # Each spike delivered to each of its targets.
  neuron_updates: chex.Array      # Each free neuron integrates once per step.
  synaptic_updates: chex.Array    # Weights the rule writes (0 in a phase that does not learn).

  def __add__(self, other: "PhaseEvents") -> "PhaseEvents":
    return jax.tree.map(jnp.add, self, other)


@flax.struct.dataclass
class StepEvents:
  """The counts of one training step: its free phase and all its nudged phases together."""
  free: PhaseEvents
  nudged: PhaseEvents

  @classmethod
  def from_flat(cls, flat: Mapping[str, float], prefix: str = "") -> "StepEvents":
    """The inverse of ``metrics.flatten`` for these counts (keys ``{prefix}free/spikes/layer0``)."""
    def phase(name):
      p = f"{prefix}{name}/"
      num_layers = sum(1 for k in flat if k.startswith(p + "spikes/layer"))
      if not num_layers:
        raise KeyError(f"no event counts under {p!r} (keys: {sorted(flat)[:6]} ...).")
      return PhaseEvents(spikes=tuple(flat[f"{p}spikes/layer{l}"] for l in range(num_layers)),
                         **{f: flat[p + f] for f in ("synaptic_ops", "neuron_updates",
                                                     "synaptic_updates")})
    return cls(free=phase("free"), nudged=phase("nudged"))


def events_from_counts(arch: Architecture, counts: Tuple[chex.Array, ...],
                       steps: int) -> PhaseEvents:
  """The counts of a phase that learns nothing from each layer's spike total ``[B]`` (input
  first): what a streamed phase keeps instead of its trains."""
  return _phase_totals(arch, counts, steps, jnp.zeros_like(counts[0]))


def _phase_totals(arch: Architecture, totals: Tuple[chex.Array, ...], steps: int,
                  writes: chex.Array) -> PhaseEvents:
  """``PhaseEvents`` from every layer's per-example spike total and weight writes ``[B]``."""
  sops = jnp.zeros(totals[0].shape)
  for l, total in enumerate(totals):
    sops += total * _fan_out(arch, l)
  return PhaseEvents(
      spikes=tuple(jnp.mean(total) for total in totals), synaptic_ops=jnp.mean(sops),
      neuron_updates=jnp.asarray(steps * sum(layer.n_out for layer in arch), jnp.float32),
      synaptic_updates=jnp.mean(writes))


def _fan_out(arch: Architecture, l: int) -> int:
  """Targets of a spike of layer ``l``: forward to the next layer, back to a free layer below."""
  return (arch[l].fan_out if l < len(arch) else 0) + (arch[l - 1].fan_in if l >= 2 else 0)


def graded_input_events(values: chex.Array, before: Optional[chex.Array] = None) -> chex.Array:
  """The graded events ``[B, T, n]`` of inputs given as values (``input_mode="current"``).

  Delta coding, as Loihi 2's graded spikes and sigma-delta networks send an input: an input
  sends one event, carrying its value, when the value changes, and a neuron whose input
  current does not decay keeps it. A still image therefore costs one event per nonzero pixel
  when the free phase starts (``before`` is None: from rest) and none in the nudged phases,
  which continue it (``before``: the value at the end of the phase before).
  """
  chex.assert_rank(values, 3)
  first = jnp.zeros_like(values[:, 0]) if before is None else before
  previous = jnp.concatenate([first[:, None], values[:, :-1]], axis=1)
  return (values != previous).astype(values.dtype)


def written_at_the_end(values: chex.Array) -> chex.Array:
  """The input synapses a learning phase writes when its inputs are constant values ``[B, T, n]``.

  The rule's input term sums ``x du_post`` (or ``x u_post``) over the phase; with ``x`` constant
  that is ``x`` times the post neuron's own sum, which the neuron keeps, so each synapse of a
  nonzero input is written once, at the phase's last step, not at every step.
  """
  chex.assert_rank(values, 3)
  last = (values[:, -1:] != 0).astype(values.dtype)
  return jnp.concatenate([jnp.zeros_like(values[:, :-1]), last], axis=1)


def phase_events(arch: Architecture, s_in: chex.Array, emitted: Tuple[chex.Array, ...],
                 written_by: Optional[Tuple[chex.Array, ...]] = None,
                 written_in: Optional[chex.Array] = None) -> PhaseEvents:
  """The counts of one phase of a batch (arrays ``[B, T, n]``).

  * spikes per layer: the input trains and what each free layer emitted;
  * synaptic operations: every spike is delivered to each of its targets (forward to the next
    layer and, from free layers, back to the previous free layer);
  * neuron updates: every free neuron integrates once per step;
  * synaptic updates: with ``written_by`` (the spikes the rule pairs, in a learning phase) a
    synapse is written at a step when either of its neurons spikes (the input layer's synapses
    only on input spikes, since the input state never changes). ``written_in``: the input
    spikes the rule pairs, when it learns over part of the phase only (default ``s_in``).
  """
  chex.assert_rank(s_in, 3)
  batch, steps = s_in.shape[:2]
  counts = [jnp.sum(s_in, -1)] + [jnp.sum(s, -1) for s in emitted]  # [B, T] per layer.
  writes = jnp.zeros((batch,))
  if written_by is not None:
    paired = [counts[0] if written_in is None else jnp.sum(written_in, -1)]
    paired += [jnp.sum(s, -1) for s in written_by]
    for l, layer in enumerate(arch):
      pre, post = paired[l], paired[l + 1]
      if l == 0:
        writes += jnp.sum(pre * layer.fan_out, -1)
      else:  # The union of the rows of spiking pre and the columns of spiking post neurons.
        writes += jnp.sum(pre * layer.fan_out + post * layer.fan_in - pre * post, -1)
  return _phase_totals(arch, [jnp.sum(c, -1) for c in counts], steps, writes)
