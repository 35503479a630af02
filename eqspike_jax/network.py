"""Parameters, activations and cost of a layered, symmetric (Hopfield-like) network.

Conventions shared by every model:

* Layer 0 is the clamped input ``x``; layers ``1 .. L+1`` are the free neurons, the last of which
  is the output. ``params[l]`` carries layer ``l`` to layer ``l + 1`` through the map of
  ``layers.Dense`` (or another layer type); its feedback to layer ``l`` is the exact transpose.
* ``params[l].b`` is the bias of the *receiving* layer ``l + 1``.
* The state of one example is a tuple of arrays, one per free layer (the input is not part of the
  state, it never changes).
"""

from typing import Callable, Tuple

import chex
import flax
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class Layer:
  """Synapses from one layer to the next."""
  w: chex.Array  # [fan_in, fan_out]; the feedback path uses its transpose.
  b: chex.Array  # [fan_out]; bias of the receiving layer.


Params = Tuple[Layer, ...]
State = Tuple[chex.Array, ...]  # One array per free (non-input) layer.


def sigmoid4(v: chex.Array) -> chex.Array:
  """``sigmoid(4 (v - 1/2))``: slope 1 at v = 1/2, range (0, 1), as in the EP reference code."""
  return jax.nn.sigmoid(4.0 * (v - 0.5))


def hard_sigmoid(v: chex.Array) -> chex.Array:
  return jnp.clip(v, 0.0, 1.0)


ACTIVATIONS = {"sigmoid4": sigmoid4, "hard_sigmoid": hard_sigmoid}


def get_activation(name: str) -> Callable[[chex.Array], chex.Array]:
  try:
    return ACTIVATIONS[name]
  except KeyError:
    raise ValueError(
        f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}.") from None


def cost(s_out: chex.Array, y: chex.Array) -> chex.Array:
  """``C = 1/2 ||s_o - y||^2`` per example (y one-hot)."""
  chex.assert_equal_shape([s_out, y])
  return 0.5 * jnp.sum(jnp.square(s_out - y), axis=-1)


def classification_metrics(out: chex.Array, y: chex.Array) -> dict:
  """Batch-mean cost and accuracy of an output ``[B, n_out]`` (what the prediction reads)."""
  chex.assert_rank([out, y], 2)
  return {"loss": jnp.mean(cost(out, y)),
          "accuracy": jnp.mean(jnp.argmax(out, -1) == jnp.argmax(y, -1))}


def layer_activity(states) -> dict:
  """Mean state of each free layer (1 = the first hidden layer): 0 is silent, 1 saturated."""
  return {f"layer{l + 1}": jnp.mean(s) for l, s in enumerate(states)}
