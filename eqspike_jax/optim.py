"""Optimizers with one learning rate per weight layer, and learning-rate schedules."""

from typing import Sequence

import optax

from eqspike_jax.config_lib import SCHEDULES
from eqspike_jax.network import Layer


def schedule(name: str, learning_rate: float, total_steps: int = 0,
             final_fraction: float = 0.0) -> optax.Schedule:
  """``constant``, or ``cosine`` decay from ``learning_rate`` to ``final_fraction`` of it."""
  if name == "constant":
    return optax.constant_schedule(learning_rate)
  if name == "cosine":
    if total_steps < 1:
      raise ValueError("a cosine schedule needs the run's total number of optimizer steps.")
    return optax.cosine_decay_schedule(learning_rate, total_steps, alpha=final_fraction)
  raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {name!r}.")


def _base(name: str, learning_rate, momentum: float) -> optax.GradientTransformation:
  if name == "adam":
    return optax.adam(learning_rate)
  if name == "sgd":
    return optax.sgd(learning_rate, momentum=momentum or None)
  raise ValueError(f"optimizer must be 'adam' or 'sgd', got {name!r}.")


def make_optimizer(name: str, learning_rates: Sequence[float], momentum: float = 0.0,
                   lr_schedule: str = "constant", total_steps: int = 0,
                   final_fraction: float = 0.0) -> optax.GradientTransformation:
  """``name`` applied to ``params[l]`` with ``learning_rates[l]`` (weights and bias alike)."""
  if lr_schedule == "constant":  # Plain rates keep the optimizer usable with traced rates.
    rates = list(learning_rates)
  else:
    rates = [schedule(lr_schedule, lr, total_steps, final_fraction) for lr in learning_rates]
  transforms = {str(l): _base(name, lr, momentum) for l, lr in enumerate(rates)}

  def labels(params):
    if len(params) != len(learning_rates):
      raise ValueError(f"{len(learning_rates)} learning rates for {len(params)} weight layers.")
    return tuple(Layer(w=str(l), b=str(l)) for l in range(len(params)))

  return optax.multi_transform(transforms, labels)
