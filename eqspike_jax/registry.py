"""The registry of models: the only place that dispatches on ``config.model``.

Each model has a jax-free section module (``defaults()`` of its config section) and a model
module with ``validate(config, fail)`` and ``make_algorithm(config, optimizer) -> Algorithm``.
Importing this module does not import jax: config files reach it through ``config_lib``.
"""

import importlib
from typing import Callable, Tuple

import ml_collections

# name -> (section module, model module).
_MODELS = {
    "rate_ep": ("eqspike_jax.models.rate_ep_section", "eqspike_jax.models.rate_ep"),
    "eqspike": ("eqspike_jax.models.eqspike_section", "eqspike_jax.models.eqspike"),
    "bptt": ("eqspike_jax.models.bptt_section", "eqspike_jax.models.bptt"),
}
MODELS: Tuple[str, ...] = tuple(_MODELS)


def check_name(name) -> None:
  if name not in _MODELS:
    raise ValueError(f"config.model = {name!r}: must be one of {list(MODELS)}.")


def section_defaults(name: str) -> ml_collections.ConfigDict:
  """The default ``config.<name>`` section of model ``name``."""
  check_name(name)
  return importlib.import_module(_MODELS[name][0]).defaults()


def model_module(name: str):
  check_name(name)
  return importlib.import_module(_MODELS[name][1])


def validate(config: ml_collections.ConfigDict, fail: Callable) -> None:
  """The model's own checks of its section (and of its combinations with shared fields)."""
  model_module(config.model).validate(config, fail)


def make_algorithm(config: ml_collections.ConfigDict, optimizer):
  """The model's ``ep_core.Algorithm`` for ``config``."""
  return model_module(config.model).make_algorithm(config, optimizer)



def init_key(seed: int):
  """The key a run's parameters are drawn from: stream 0 of its seed (stream 1 is the steps')."""
  import jax  # pylint: disable=g-import-not-at-top  (this module stays jax-free at import)
  return jax.random.fold_in(jax.random.PRNGKey(seed), 0)


def init_params(config: ml_collections.ConfigDict):
  """The parameters a run of ``config`` starts from (what the trainer starts from too)."""
  import optax  # pylint: disable=g-import-not-at-top
  return make_algorithm(config, optax.identity()).init_params(init_key(config.seed))
