"""Analytic FLOP counts of one EP training step, and a jaxpr counter to check them against.

The analytic count lists every matrix product one training step of ``rate_ep`` performs, with its
batched shape, exactly as ``rate_ep.step``, ``run_phase``, ``ep_gradient`` and ``online_update``
compute them. A product ``[m, k] @ [k, n]`` costs ``2 m k n`` FLOPs (one multiply and one add per
multiply-accumulate). Elementwise work (activations, biases, the nudge, the optimizer) is left out
of the FLOPs and reported separately as the number of activation evaluations, since its cost
depends on the activation and on fusion rather than on arithmetic.

``jaxpr_cost`` counts the same products in the traced program (scan bodies times their length),
so a test can hold the hand-written count to what the code really does.
"""

import collections
import dataclasses
from typing import Dict, List, NamedTuple, Sequence

import jax.extend.core as jex_core
import ml_collections


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

  @property
  def flops(self) -> int:
    return 2 * self.m * self.k * self.n * self.count


CATEGORIES = ("input_drive", "dynamics", "update")


# ----------------------------------------------------------------------------------------------
# Rate EP, analytic.
# ----------------------------------------------------------------------------------------------

def _check_model(config: ml_collections.ConfigDict) -> None:
  if config.model not in ("rate_ep", "eqspike"):
    raise ValueError(f"config.model = {config.model!r}: no FLOP count for this model.")


def _num_nudged_phases(config) -> int:
  return 2 if config.nudging == "symmetric" else 1


def dynamics_matmuls(sizes: Sequence[int], rows: int, steps: int, phase: str) -> List[Matmul]:
  """Products of ``steps`` calls of ``rate_ep.step`` on ``rows`` examples.

  The drive of the first free layer comes from the input, precomputed by the caller; every
  weight layer ``l >= 1`` is used once forward (``s_l @ W_l`` into layer ``l + 1``) and once as
  feedback (``s_{l+1} @ W_l^T`` into layer ``l``): the output receives no feedback and the
  clamped input needs none.
  """
  out = []
  for l in range(1, len(sizes) - 1):
    fan_in, fan_out = sizes[l], sizes[l + 1]
    out.append(Matmul(f"{phase} forward W{l}", "dynamics", rows, fan_in, fan_out, steps))
    out.append(Matmul(f"{phase} feedback W{l}^T", "dynamics", rows, fan_out, fan_in, steps,
                      rhs_t=True))
  return out


def _update_matmuls(sizes: Sequence[int], batch: int, count: int) -> List[Matmul]:
  """Products of ``count`` calls of ``rate_ep.contrast_gradient``.

  Layer 0 takes one product, ``x^T (post_a - post_b)``, because the input is the same in both
  states; every other layer takes two, ``pre_a^T post_a`` and ``pre_b^T post_b``.
  """
  out = [Matmul("update W0", "update", sizes[0], batch, sizes[1], count, lhs_t=True)]
  for l in range(1, len(sizes) - 1):
    out.append(Matmul(f"update W{l}", "update", sizes[l], batch, sizes[l + 1], 2 * count,
                      lhs_t=True))
  return out


# ----------------------------------------------------------------------------------------------
# EqSpike, analytic: the dense products the implementation performs (a chip would instead pay
# per spike; those event counts come from eqspike.phase_events).
# ----------------------------------------------------------------------------------------------

def _rule_matmuls(sizes: Sequence[int], rows: int, count: int, traces: int,
                  shared_input: bool, debias: bool) -> List[Matmul]:
  """Products of ``count`` calls of ``eqspike.rule_sums`` over ``rows`` (batch x time) rows.

  The input layer takes one product per trace, or one in all when the traces share the input
  trains; every other layer takes two per trace (``S_pre^T du_post`` and ``du_pre^T S_post``),
  and two more per trace with ``debias`` (``self_coupling_sums``).
  """
  first = 1 if shared_input else traces
  out = [Matmul("rule W0", "update", sizes[0], rows, sizes[1], count * first, lhs_t=True)]
  per_layer = 2 * traces * (2 if debias else 1)
  for l in range(1, len(sizes) - 1):
    out.append(Matmul(f"rule W{l}", "update", sizes[l], rows, sizes[l + 1], count * per_layer,
                      lhs_t=True))
  return out


def _eqspike_matmuls(config: ml_collections.ConfigDict) -> List[Matmul]:
  sizes = tuple(config.layer_sizes)
  batch, t_free, t_nudge = config.batch_size, config.t_free, config.t_nudge
  symmetric = config.nudging == "symmetric"
  phases = 2 if symmetric else 1
  traces = 2 if symmetric or config.free_contrast else 1
  online = config.update_mode == "online"

  def drive(name, steps):  # drives_of: one product over (batch, time); current input: one row.
    rows = batch if config.input_mode == "current" else batch * steps
    return Matmul(name, "input_drive", rows, sizes[0], sizes[1], 1)

  out = [drive("free input drive", t_free)] + dynamics_matmuls(sizes, batch, t_free, "free")
  out += dynamics_matmuls(sizes, batch * phases, t_nudge, "nudged")
  if online:
    # The weights move at every nudged step: the drive and the rule come once per step.
    out.append(Matmul("nudged input drive", "input_drive", batch, sizes[0], sizes[1], t_nudge))
    out += _rule_matmuls(sizes, batch, t_nudge, traces, symmetric, config.debias)
  else:
    out.append(drive("nudged input drive", t_nudge))
    out += _rule_matmuls(sizes, batch * t_nudge, 1, traces, symmetric, config.debias)
  return out


def step_matmuls(config: ml_collections.ConfigDict) -> List[Matmul]:
  """Every matrix product of one training step on a batch of ``config.batch_size``."""
  _check_model(config)
  if config.model == "eqspike":
    return _eqspike_matmuls(config)
  sizes = tuple(config.layer_sizes)
  batch = config.batch_size
  drive = Matmul("input drive x@W0", "input_drive", batch, sizes[0], sizes[1], 1)
  free = dynamics_matmuls(sizes, batch, config.t_free, "free")
  if config.update_mode == "online":
    # C-EP moves W0 at every nudged step, so the drive is recomputed at each of them, and the
    # per-step contrast is one contrast_gradient per nudged step.
    nudged_drive = Matmul("nudged input drive x@W0", "input_drive", batch, sizes[0], sizes[1],
                          config.t_nudge)
    nudged = dynamics_matmuls(sizes, batch, config.t_nudge, "nudged")
    return [drive, nudged_drive] + free + nudged + _update_matmuls(sizes, batch, config.t_nudge)
  # Symmetric nudging runs both nudged phases in one vmap: products of 2B rows, same total.
  rows = batch * _num_nudged_phases(config)
  nudged = dynamics_matmuls(sizes, rows, config.t_nudge, "nudged")
  return [drive] + free + nudged + _update_matmuls(sizes, batch, 1)


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
  time_steps = config.t_free + _num_nudged_phases(config) * config.t_nudge
  counts["time_steps"] = time_steps
  # Activations (rate EP) or neuron integrations (EqSpike): one per free neuron per step.
  counts["activation_evals"] = time_steps * sum(tuple(config.layer_sizes)[1:])
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
    if name == "dot_general":
      total = JaxprCost(total.dot_flops + _dot_flops(eqn), total.elements)
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
