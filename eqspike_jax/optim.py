"""Optimizers with one learning rate per weight layer."""

from typing import Sequence

import optax

from eqspike_jax.network import Layer


def _base(name: str, learning_rate: float, momentum: float) -> optax.GradientTransformation:
  if name == "adam":
    return optax.adam(learning_rate)
  if name == "sgd":
    return optax.sgd(learning_rate, momentum=momentum or None)
  raise ValueError(f"optimizer must be 'adam' or 'sgd', got {name!r}.")


def make_optimizer(name: str, learning_rates: Sequence[float],
                   momentum: float = 0.0) -> optax.GradientTransformation:
  """``name`` applied to ``params[l]`` with ``learning_rates[l]`` (weights and bias alike)."""
  transforms = {str(l): _base(name, lr, momentum) for l, lr in enumerate(learning_rates)}

  def labels(params):
    if len(params) != len(learning_rates):
      raise ValueError(f"{len(learning_rates)} learning rates for {len(params)} weight layers.")
    return tuple(Layer(w=str(l), b=str(l)) for l in range(len(params)))

  return optax.multi_transform(transforms, labels)
