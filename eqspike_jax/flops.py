"""Analytic FLOP counts of one EP training step, and a jaxpr counter to check them against.

The analytic count lists every matrix product one training step performs, with its batched
shape, exactly as the models compute them (``models.rate_ep``: ``step``, ``run_phase``,
``contrast_sums``, ``online_phases``; ``models.eqspike``: ``free_phase``, ``nudged_phases``,
``online_phases`` and ``spike_rule.Rule.sums``), written against the network's layers
(``layers.from_config``; a convolution as the product of its multiply-accumulates,
``layers.Conv.products``). A product ``[m, k] @ [k, n]`` costs ``2 m k n`` FLOPs (one multiply
and one add per multiply-accumulate). Elementwise work (activations, biases, the nudge, the
optimizer) is left out of the FLOPs and reported separately as the number of activation
evaluations, since its cost depends on the activation and on fusion rather than on arithmetic.

``jaxpr_cost`` counts the same products in the traced program (scan bodies times their length),
so a test can hold the hand-written count to what the code really does.
"""

import collections
import dataclasses
from typing import Callable, Dict, List, NamedTuple, Optional

import jax.extend.core as jex_core
import ml_collections

from eqspike_jax import ep_core
from eqspike_jax import layers
from eqspike_jax import registry
from eqspike_jax.layers import Architecture
from eqspike_jax.models import eqspike
from eqspike_jax.models import rate_ep


@dataclasses.dataclass(frozen=True)
class Matmul:
  """``count`` products ``[m, k] @ [k, n]`` in one training step of a whole batch.

  ``lhs_t`` / ``rhs_t`` say that the code stores that operand transposed (``x.T @ d``,
  ``s @ w.T``), which a matmul benchmark of the same shapes should reproduce: the memory layout
  changes the speed of a product, not its FLOPs.
  """
  name: str
  category: str  # "input_drive", "dynamics" or "update".
  m: int
  k: int
  n: int
  count: int
  lhs_t: bool = False
  rhs_t: bool = False
  # A convolution's products (layers.Conv.products): the layer and its map, so that a benchmark
  # times the convolution itself, on `rows` examples, not a matmul of the same size.
  layer: Optional[object] = None
  op: str = ""
  rows: int = 0

  @property
  def flops(self) -> int:
    return 2 * self.m * self.k * self.n * self.count


CATEGORIES = ("input_drive", "dynamics", "update")


def _nudging(config: ml_collections.ConfigDict) -> ep_core.Nudging:
  return ep_core.Nudging(config.nudging, config.beta)


# ----------------------------------------------------------------------------------------------
# Products every model shares.
# ----------------------------------------------------------------------------------------------

def _product(layer, op: str, name: str, category: str, rows: int, count: int,
             **transposed) -> Matmul:
  """``count`` products of ``layer``'s map ``op`` on ``rows`` rows (``layer.products``)."""
  m, k, n = layer.products(rows)[op]
  conv = not isinstance(layer, layers.Dense)
  return Matmul(name, category, m, k, n, count, layer=layer if conv else None, op=op,
                rows=rows, **({} if conv else transposed))


def input_drive(arch: Architecture, name: str, rows: int, count: int = 1) -> Matmul:
  """``count`` products ``forward`` of the input layer on ``rows`` rows."""
  return _product(arch[0], "forward", name, "input_drive", rows, count)


def dynamics_matmuls(arch: Architecture, rows: int, steps: int, phase: str) -> List[Matmul]:
  """Products of ``steps`` network steps on ``rows`` examples (``layers.layer_currents``).

  The drive of the first free layer comes from the input, precomputed by the caller; every
  weight layer ``l >= 1`` is used once forward (into layer ``l + 1``) and once transposed, as
  feedback (into layer ``l``): the output sends no feedback and the clamped input needs none.
  """
  out = []
  for l, layer in enumerate(arch[1:], start=1):
    out.append(_product(layer, "forward", f"{phase} forward W{l}", "dynamics", rows, steps))
    out.append(_product(layer, "transpose", f"{phase} feedback W{l}^T", "dynamics", rows,
                        steps, rhs_t=True))
  return out


def outer_matmuls(arch: Architecture, name: str, rows: int, first: int,
                  per_layer: int) -> List[Matmul]:
  """``first`` outer products ``pre^T post`` of the input layer, ``per_layer`` of each other.

  ``rows`` is what the outer product sums over: the batch (rate EP, an online step) or batch x
  time (``layers.Dense.outer`` on ``[B, T, .]`` arrays).
  """
  return [_product(layer, "outer", f"{name} W{l}", "update", rows,
                   first if l == 0 else per_layer, lhs_t=True) for l, layer in enumerate(arch)]


# ----------------------------------------------------------------------------------------------
# Rate EP (models/rate_ep.py).
# ----------------------------------------------------------------------------------------------

def _contrast_matmuls(arch: Architecture, batch: int, count: int) -> List[Matmul]:
  """Products of ``count`` calls of ``rate_ep.contrast_sums``.

  Layer 0 takes one product, ``x^T (post_a - post_b)``, because the clamped input is the same in
  both states; every other layer takes two, ``pre_a^T post_a`` and ``pre_b^T post_b``.
  """
  return outer_matmuls(arch, "update", batch, count, 2 * count)


def _rate_ep_matmuls(config: ml_collections.ConfigDict) -> List[Matmul]:
  """``rate_ep.estimate`` (accumulated) or ``rate_ep.online_phases`` (C-EP) on one batch."""
  arch, dyn = layers.from_config(config), rate_ep.dynamics_from_config(config)
  batch = config.batch_size
  # free_phase: the drive once per example, reused by every step of every phase.
  out = [input_drive(arch, "input drive x@W0", batch)]
  out += dynamics_matmuls(arch, batch, dyn.t_free, "free")
  if config.update_mode == "online":
    # C-EP moves W0 at every nudged step, so the drive is recomputed at each of them, and each
    # nudged step takes its own contrast with the step before it.
    out.append(input_drive(arch, "nudged input drive x@W0", batch, dyn.t_nudge))
    out += dynamics_matmuls(arch, batch, dyn.t_nudge, "nudged")
    return out + _contrast_matmuls(arch, batch, dyn.t_nudge)
  # Symmetric nudging runs both nudged phases in one vmap: products of 2B rows, same total.
  rows = batch * ep_core.Nudging(config.nudging, config.beta).num_phases
  out += dynamics_matmuls(arch, rows, dyn.t_nudge, "nudged")
  return out + _contrast_matmuls(arch, batch, 1)


# ----------------------------------------------------------------------------------------------
# EqSpike (models/eqspike.py): the dense products the implementation performs (a chip would
# instead pay per spike; those event counts come from events.phase_events).
# ----------------------------------------------------------------------------------------------

def _rule_matmuls(arch: Architecture, rows: int, count: int, traces: int, shared_input: bool,
                  debias: bool) -> List[Matmul]:
  """Products of ``count`` calls of ``spike_rule.Rule.sums`` over ``rows`` (batch x time) rows.

  The input layer takes one product per trace, or one in all when the traces share the input
  trains; every other layer takes two per trace (``S_pre^T du_post`` and ``du_pre^T S_post``),
  and two more per trace with ``debias`` (``self_coupling_sums``).
  """
  first = 1 if shared_input else traces
  per_layer = 2 * traces * (2 if debias else 1)
  return outer_matmuls(arch, "rule", rows, count * first, count * per_layer)


def _eqspike_matmuls(config: ml_collections.ConfigDict) -> List[Matmul]:
  """``eqspike.Model.estimate`` (accumulated) or ``eqspike.online_phases`` on one batch."""
  model = eqspike.model_from_config(config)
  arch, dyn, nudging = model.arch, model.dyn, model.nudging
  batch = config.batch_size
  # The rule contrasts two traces: +beta with -beta, or the nudged phase with the free tail.
  traces = 2 if nudging.symmetric or model.tail_contrast else 1

  def drive(name, steps):  # drives_of: one product over (batch, time); current input: one row.
    return input_drive(arch, name, batch if dyn.current_input else batch * steps)

  out = [drive("free input drive", dyn.t_free)]
  out += dynamics_matmuls(arch, batch, dyn.t_free, "free")
  # Symmetric nudging runs both nudged phases in one vmap: products of 2B rows.
  out += dynamics_matmuls(arch, batch * nudging.num_phases, dyn.t_nudge, "nudged")
  if config.update_mode == "online":
    # The weights move at every nudged step: the drive and the rule come once per step.
    out.append(input_drive(arch, "nudged input drive", batch, dyn.t_nudge))
    return out + _rule_matmuls(arch, batch, dyn.t_nudge, traces, nudging.symmetric,
                               model.rule.debias)
  out.append(drive("nudged input drive", dyn.t_nudge))
  # State pairing multiplies each trace's input trains with its own states: no shared product.
  # Its time window (only that pairing has one) shortens the rows the rule sums over.
  steps = model.rule.window or dyn.t_nudge
  shared = nudging.symmetric and not model.rule.correlational
  return out + _rule_matmuls(arch, batch * steps, 1, traces, shared, model.rule.debias)


# ----------------------------------------------------------------------------------------------
# Every model.
# ----------------------------------------------------------------------------------------------

# The count of each model, keyed on its module (registry.model_module), not on its name.
_COUNTS: Dict[object, Callable[[ml_collections.ConfigDict], List[Matmul]]] = {
    rate_ep: _rate_ep_matmuls,
    eqspike: _eqspike_matmuls,
}


def step_matmuls(config: ml_collections.ConfigDict) -> List[Matmul]:
  """Every matrix product of one training step on a batch of ``config.batch_size``."""
  count_fn = _COUNTS.get(registry.model_module(config.model))
  if count_fn is None:
    raise ValueError(f"config.model = {config.model!r}: no FLOP count for this model.")
  return count_fn(config)


def ep_step_flops(config: ml_collections.ConfigDict) -> Dict[str, int]:
  """FLOPs of one EP training step, per example, by part.

  Returns:
    ``input_drive``, ``dynamics``, ``update`` and their ``total`` (FLOPs per example; matrix
    products only), ``time_steps`` (network steps per example over all phases) and
    ``activation_evals`` (activations evaluated per example: one per free neuron per step).
  """
  batch = config.batch_size
  by_category = collections.Counter()
  for mm in step_matmuls(config):
    by_category[mm.category] += mm.flops
  # Every product has the batch as one of its dimensions, so this division is exact.
  assert all(v % batch == 0 for v in by_category.values()), by_category
  counts = {c: by_category[c] // batch for c in CATEGORIES}
  counts["total"] = sum(counts[c] for c in CATEGORIES)
  time_steps = config.t_free + ep_core.Nudging(config.nudging, config.beta).num_phases * (
      config.t_nudge)
  counts["time_steps"] = time_steps
  # Activations (rate EP) or neuron integrations (EqSpike): one per free neuron per step.
  arch = layers.from_config(config)
  counts["activation_evals"] = time_steps * sum(layer.n_out for layer in arch)
  return counts


# ----------------------------------------------------------------------------------------------
# The same count read off a traced program.
# ----------------------------------------------------------------------------------------------

class JaxprCost(NamedTuple):
  dot_flops: int                 # 2 x multiply-accumulates of every dot_general.
  elements: collections.Counter  # Output elements produced, per primitive name.


def _num_elements(aval) -> int:
  n = 1
  for d in getattr(aval, "shape", ()):
    n *= int(d)
  return n


def _conv_flops(eqn) -> int:
  """A convolution: one dot of the kernel's taps x input features per output element."""
  rhs_spec = eqn.params["dimension_numbers"].rhs_spec  # (out feature, in feature, spatial...)
  rhs_shape = eqn.invars[1].aval.shape
  k = int(rhs_shape[rhs_spec[1]])
  for d in rhs_spec[2:]:
    k *= int(rhs_shape[d])
  return 2 * k * _num_elements(eqn.outvars[0].aval)


def _dot_flops(eqn) -> int:
  (lhs_contract, _), _ = eqn.params["dimension_numbers"]
  lhs_shape = eqn.invars[0].aval.shape
  k = 1
  for d in lhs_contract:
    k *= int(lhs_shape[d])
  return 2 * k * _num_elements(eqn.outvars[0].aval)


def _add(a: JaxprCost, b: JaxprCost, times: int = 1) -> JaxprCost:
  elements = collections.Counter(a.elements)
  for name, n in b.elements.items():
    elements[name] += times * n
  return JaxprCost(a.dot_flops + times * b.dot_flops, elements)


def jaxpr_cost(jaxpr) -> JaxprCost:
  """Counts the products and elementwise outputs of a (closed) jaxpr, loops included.

  A ``scan`` body counts ``length`` times and a ``cond`` counts its costliest branch. A
  ``while_loop`` has no static trip count, so it is refused rather than miscounted.
  """
  if isinstance(jaxpr, jex_core.ClosedJaxpr):
    jaxpr = jaxpr.jaxpr
  total = JaxprCost(0, collections.Counter())
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    subs = list(jex_core.jaxprs_in_params(eqn.params))
    if name in ("dot_general", "conv_general_dilated"):
      fn = _dot_flops if name == "dot_general" else _conv_flops
      total = JaxprCost(total.dot_flops + fn(eqn), total.elements)
    elif name == "while":
      raise ValueError("jaxpr_cost cannot count a while_loop: its trip count is not static.")
    elif name == "scan":
      total = _add(total, jaxpr_cost(eqn.params["jaxpr"]), eqn.params["length"])
    elif name == "cond":
      total = _add(total, max((jaxpr_cost(b) for b in subs), key=lambda c: c.dot_flops))
    elif subs:  # pjit, custom_jvp_call, remat...: their bodies run once.
      for sub in subs:
        total = _add(total, jaxpr_cost(sub))
    else:
      total.elements[name] += sum(_num_elements(v.aval) for v in eqn.outvars)
  return total
