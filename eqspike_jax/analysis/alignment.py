"""Per-layer alignment of EqSpike's estimate: spike noise, finite time and finite beta told apart.

For one network, one batch and one rule setting (an ``eqspike.Model``) the spike-driven estimate
of ``dC/dtheta`` is compared, layer by layer, with three references that each remove one source
of error:

* the **noise-free twin**: the same model with every spike replaced by its rate (same leak, beta,
  phase lengths and rule). What is left between the two is spike noise;
* **rate EP** at the same beta on the settled phases (the hard-sigmoid fixed points, which are
  the spiking network's rate fixed points). Twin against rate EP is the finite-time bias;
* the **true gradient** of the cost at the free fixed point, by implicit differentiation. Rate EP
  against it is the finite-beta bias (it vanishes as beta -> 0).

The fixed points are found with the twin's own damped dynamics ``u <- clip((1 - gamma) u +
gamma I)``, which settle where the undamped synchronous iteration of deep networks can oscillate;
they have the fixed points of ``u = clip(I)``.
"""

import dataclasses
from typing import Dict, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from eqspike_jax import ep_core
from eqspike_jax import layers
from eqspike_jax import network
from eqspike_jax import spiking
from eqspike_jax.layers import Architecture
from eqspike_jax.models import eqspike
from eqspike_jax.models import rate_ep
from eqspike_jax.network import Params

REFERENCES = ("twin", "rate_ep", "true")


def noise_free_twin(model: eqspike.Model) -> eqspike.Model:
  """The same model with every spike, input spikes included, replaced by its rate."""
  return dataclasses.replace(model, dyn=dataclasses.replace(model.dyn, spike_mode="rate"))


def estimate(model: eqspike.Model, params: Params, x: chex.Array, y: chex.Array,
             key: chex.PRNGKey) -> Params:
  """The model's estimate of ``dC/dtheta`` for the batch, as a training step computes it."""
  betas, key = ep_core.split_step_key(key, model.nudging, x.dtype, None)
  return ep_core.estimate_gradient(model.estimate, model.nudging, params, x, y, betas, key)[0]


def settled_phase(arch: Architecture, params: Params, x: chex.Array, y: chex.Array,
                  beta: Optional[chex.Numeric], gamma: float, num_steps: int,
                  state0: Optional[spiking.NetworkState] = None
                  ) -> Tuple[Tuple[chex.Array, ...], chex.Array]:
  """The rate fixed point at ``beta`` (None: free), from rest or ``state0``: ``(u, residual)``.

  ``residual`` is the largest ``|du|`` of the last step over the batch, divided by ``gamma``:
  the distance ``|clip(I) - u|`` from the fixed point of an unclipped unit.
  """
  chex.assert_rank([x, y], 2)
  dyn = spiking.SpikingDynamics(gamma=gamma, t_free=num_steps, t_nudge=num_steps,
                                spike_mode="rate")
  drive = arch[0].forward(params[0], x)  # Rates in, so the drive is constant.
  if state0 is None:
    state0 = spiking.batched_rest_state(arch, x.shape[0], x.dtype)

  def one(d, s0, t):
    step = lambda s: spiking.network_step(arch, params, d, s, t, beta, dyn, None)
    s, _ = jax.lax.scan(lambda s, _: (step(s)[0], None), s0, None, length=num_steps - 1)
    return step(s)  # The last step's record gives the residual; no trace is kept.

  state, last = jax.vmap(one)(drive, state0, y)
  du = jnp.concatenate([jnp.abs(d) for d in last.du], -1)
  return tuple(layer.u for layer in state), jnp.max(du) / gamma


def rate_ep_estimate(model: eqspike.Model, params: Params, x: chex.Array, y: chex.Array,
                     num_steps: int, free: Optional[Tuple] = None) -> Tuple[Params, chex.Array]:
  """Rate EP on the settled phases at the model's nudging: ``(estimate, worst residual)``.

  ``free``: the settled free phase ``(u, residual)`` when the caller has it already.
  """
  arch, gamma = model.arch, model.dyn.gamma
  free_u, free_res = free or settled_phase(arch, params, x, y, None, gamma, num_steps)
  start = _state_at(arch, x, free_u)
  betas = model.nudging.betas(jax.random.PRNGKey(0), x.dtype)
  if not model.nudging.symmetric:
    betas = jnp.abs(betas)  # A random sign is a training device: measure the +beta estimate.
  nudged = [settled_phase(arch, params, x, y, b, gamma, num_steps, start) for b in betas]
  s_a = nudged[0][0]
  s_b = nudged[1][0] if model.nudging.symmetric else free_u
  sums = rate_ep.contrast_sums(arch, x, s_a, s_b)
  grads = ep_core.scale_tree(sums, model.nudging.scale(x.shape[0], betas))
  return grads, jnp.max(jnp.stack([free_res] + [r for _, r in nudged]))


def _state_at(arch, x, u):
  """A rate-mode network state holding ``u`` (its 'spikes' are the rates themselves)."""
  rest = spiking.batched_rest_state(arch, x.shape[0], x.dtype)
  return tuple(s.replace(u=v, spikes=v) for s, v in zip(rest, u))


def true_gradient(arch: Architecture, params: Params, x: chex.Array, y: chex.Array,
                  u_star: Tuple[chex.Array, ...], num_iterations: int = 600,
                  damping: float = 0.2) -> Tuple[Params, chex.Array]:
  """``dC(u*(theta))/dtheta`` at the free fixed point ``u* = clip(I(theta, u*))``, implicitly.

  ``dC/dtheta = lambda^T df/dtheta`` with ``(I - df/du)^T lambda = dC/du``, solved by the damped
  iteration ``lambda <- (1 - a) lambda + a (dC/du + (df/du)^T lambda)`` (it converges wherever the
  damped forward dynamics do, without forming the Jacobian). Returns the gradient and the
  relative residual of the adjoint equation.
  """
  chex.assert_rank([x, y], 2)
  rho = network.hard_sigmoid

  def f(p, u):
    drive = arch[0].forward(p[0], x)
    return jax.vmap(lambda d, s, t: rate_ep.step(arch, p, d, s, t, None, rho))(drive, u, y)

  cost = lambda u: jnp.mean(network.cost(u[-1], y))
  dc_du = jax.grad(cost)(u_star)
  _, vjp_u = jax.vjp(lambda u: f(params, u), u_star)

  def adjoint_step(lam, _):
    target = jax.tree.map(jnp.add, dc_du, vjp_u(lam)[0])
    return jax.tree.map(lambda l, t: (1.0 - damping) * l + damping * t, lam, target), None

  lam, _ = jax.lax.scan(adjoint_step, dc_du, None, length=num_iterations)
  target = jax.tree.map(jnp.add, dc_du, vjp_u(lam)[0])
  res = _tree_norm(jax.tree.map(jnp.subtract, target, lam)) / _tree_norm(lam)
  _, vjp_p = jax.vjp(lambda p: f(p, u_star), params)
  return vjp_p(lam)[0], res


def _tree_norm(tree) -> chex.Array:
  return jnp.sqrt(sum(jnp.sum(jnp.square(a)) for a in jax.tree.leaves(tree)))


def layer_cosines(a: Params, b: Params) -> np.ndarray:
  """The cosine of every weight layer's ``(w, b)`` in ``a`` with that in ``b``, ``[layers]``."""
  out = []
  for la, lb in zip(a, b):
    va = np.concatenate([np.ravel(la.w), np.ravel(la.b)]).astype(np.float64)
    vb = np.concatenate([np.ravel(lb.w), np.ravel(lb.b)]).astype(np.float64)
    denom = np.linalg.norm(va) * np.linalg.norm(vb)
    out.append(float(va @ vb / denom) if denom > 0 else float("nan"))
  return np.array(out)


def layer_norm_ratios(a: Params, b: Params) -> np.ndarray:
  """``|a_l| / |b_l|`` per weight layer: a cosine of 1 can still hide a vanishing layer."""
  return np.array([float(_tree_norm(la) / _tree_norm(lb)) for la, lb in zip(a, b)])


def references(model: eqspike.Model, params: Params, x: chex.Array, y: chex.Array,
               settle_steps: int) -> Dict[str, object]:
  """The settled references of ``model``'s estimate (rate EP, true gradient), how settled."""
  free = settled_phase(model.arch, params, x, y, None, model.dyn.gamma, settle_steps)
  rate, rate_res = rate_ep_estimate(model, params, x, y, settle_steps, free)
  free_u = free[0]
  true, adjoint_res = true_gradient(model.arch, params, x, y, free_u)
  return {"rate_ep": rate, "true": true, "settle_residual": rate_res,
          "adjoint_residual": adjoint_res}


def jitted_references(model: eqspike.Model, params: Params, x: chex.Array, y: chex.Array,
                      settle_steps: int) -> Dict[str, object]:
  return jax.jit(references, static_argnums=(0, 4))(model, params, x, y, settle_steps)


def compare(model: eqspike.Model, params: Params, x: chex.Array, y: chex.Array,
            key: chex.PRNGKey, refs: Dict[str, object]) -> Dict[str, object]:
  """Per-layer cosines of the spike estimate against ``refs``, and of the references down the
  chain: ``spike_vs_*`` for each reference; ``twin_vs_rate_ep`` (finite time), ``twin_vs_true``
  and ``rate_ep_vs_true`` (finite beta). The twin is rerun for ``model`` (it depends on the
  rule and the phase lengths); the settled references depend only on the batch and beta.
  """
  spike = jax.jit(estimate, static_argnums=0)(model, params, x, y, key)
  refs = {**refs, "twin": jax.jit(estimate, static_argnums=0)(noise_free_twin(model), params, x,
                                                              y, key)}
  out = {f"spike_vs_{name}": layer_cosines(spike, refs[name]).tolist() for name in REFERENCES}
  out["twin_vs_rate_ep"] = layer_cosines(refs["twin"], refs["rate_ep"]).tolist()
  out["twin_vs_true"] = layer_cosines(refs["twin"], refs["true"]).tolist()
  out["rate_ep_vs_true"] = layer_cosines(refs["rate_ep"], refs["true"]).tolist()
  out["spike_norm_over_twin"] = layer_norm_ratios(spike, refs["twin"]).tolist()
  out["settle_residual"] = float(refs["settle_residual"])
  out["adjoint_residual"] = float(refs["adjoint_residual"])
  return out


def measure(model: eqspike.Model, params: Params, x: chex.Array, y: chex.Array,
            key: chex.PRNGKey, settle_steps: int = 300) -> Dict[str, object]:
  """``compare`` against freshly computed references."""
  return compare(model, params, x, y, key, jitted_references(model, params, x, y, settle_steps))


def random_network(sizes, key: chex.PRNGKey, init: str = "uniform", scale: float = 1.0) -> Params:
  return layers.init_params(layers.dense_stack(sizes), key, init, scale)
