"""``config.rate_ep``: the fields only rate-based EP reads (plain data; no jax import)."""

import ml_collections


def defaults() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  s.activation = "sigmoid4"  # rho(v) = sigmoid(4 (v - 1/2)); or "hard_sigmoid" = clip(v, 0, 1).
  return s

