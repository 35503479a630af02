"""Defaults shared by the experiment configs, and validation of a config before any work."""

import importlib.util
import os

import ml_collections

from eqspike_jax import network, optim, rate_ep

MODELS = ("rate_ep", "eqspike")
OPTIMIZERS = ("adam", "sgd")


def base_config() -> ml_collections.ConfigDict:
  """Every field a config may set, with the rate-EP reference values."""
  c = ml_collections.ConfigDict()
  c.name = ""                  # The config's file name; recorded in the run summary.
  c.model = "rate_ep"          # One of MODELS.
  c.seed = 0

  # Data.
  c.dataset = "mnist"
  c.data_dir = ""              # Empty: $TFDS_DATA_DIR, else ~/tensorflow_datasets.
  c.download = True            # Prepare the set when missing (needs internet).
  c.train_subset = 0           # First N training examples; 0 = all.
  c.eval_subset = 0            # First N test examples; 0 = all.

  # Network.
  c.layer_sizes = (784, 512, 10)
  c.activation = "sigmoid4"    # rho(v) = sigmoid(4 (v - 1/2)); or "hard_sigmoid".
  c.init = "uniform"           # U(-1/sqrt(fan_in), 1/sqrt(fan_in)); or "glorot".
  c.init_scale = 1.0

  # Equilibrium propagation.
  c.t_free = 30
  c.t_nudge = 10
  c.beta = 0.1
  c.nudging = "one_sided"      # One of rate_ep.NUDGING_MODES.
  c.update_mode = "accumulated"  # "online" applies the update at every nudged step (C-EP).

  # EqSpike (model "eqspike").
  c.gamma = 0.2                # dt / tau, in (0, 1].
  c.spike_mode = "deterministic"  # Sigma-delta; or "stochastic" (Bernoulli(u)).
  c.input_mode = "spikes"      # Pixels as spike trains; or "current".
  c.readout = "state"          # argmax of u_o; or "spike_count" over the last readout_steps.
  c.readout_steps = 20
  c.free_contrast = True       # One-sided nudging: subtract the free-phase tail's statistic.
  c.debias = False             # Subtract each synapse's self-coupling from the rule.
  c.pairing = "same_step"      # Spikes paired with du(t): S(t) or S(t+1); see eqspike.py.

  # Optimisation.
  c.optimizer = "adam"
  c.learning_rates = (5e-4, 5e-4)  # One per weight layer.
  c.momentum = 0.0                 # SGD only.
  c.lr_schedule = "constant"       # Or "cosine": decay over the whole run.
  c.lr_final_fraction = 0.0        # Cosine: the last rate as a fraction of the first.
  c.batch_size = 50
  c.num_epochs = 10
  c.eval_batch_size = 1000

  # Running.
  c.steps_per_call = 100           # Train steps per jit call (one lax.scan); metrics per call.
  c.checkpoint_every_steps = 0     # 0: at the end of every epoch only.
  c.scan_unroll = 1                # Unroll factor of the time scans (speed only).
  c.num_devices = 0                # Data-parallel devices; 0 = every local device.
  return c


def apply_variant(c: ml_collections.ConfigDict, variant: str) -> ml_collections.ConfigDict:
  """Every config's variants: ``""`` (the full run) or ``"quick"`` (seconds; tests and CI)."""
  if variant == "quick":
    c.train_subset = 2000
    c.eval_subset = 1000
    c.num_epochs = 2
    c.steps_per_call = 20
  elif variant:
    raise ValueError(f"unknown config variant {variant!r}; known: 'quick'.")
  return c


def _fail(field, value, why):
  raise ValueError(f"config.{field} = {value!r}: {why}")


def _positive_int(c, field):
  value = c[field]
  if not isinstance(value, int) or isinstance(value, bool) or value < 1:
    _fail(field, value, "must be a positive integer.")


def _non_negative_int(c, field):
  value = c[field]
  if not isinstance(value, int) or isinstance(value, bool) or value < 0:
    _fail(field, value, "must be a non-negative integer (0 disables it).")


def _choice(c, field, choices):
  if c[field] not in choices:
    _fail(field, c[field], f"must be one of {list(choices)}.")


def validate(c: ml_collections.ConfigDict) -> None:
  """Raises ``ValueError`` naming the first invalid field and what it should be."""
  _choice(c, "model", MODELS)
  _choice(c, "activation", sorted(network.ACTIVATIONS))
  _choice(c, "init", ("uniform", "glorot"))
  _choice(c, "nudging", rate_ep.NUDGING_MODES)
  _choice(c, "update_mode", rate_ep.UPDATE_MODES)
  _choice(c, "optimizer", OPTIMIZERS)
  for field in ("t_free", "t_nudge", "batch_size", "num_epochs", "eval_batch_size",
                "steps_per_call", "scan_unroll"):
    _positive_int(c, field)
  for field in ("seed", "train_subset", "eval_subset", "checkpoint_every_steps", "num_devices"):
    _non_negative_int(c, field)

  sizes = tuple(c.layer_sizes)
  if len(sizes) < 2 or any(not isinstance(n, int) or n < 1 for n in sizes):
    _fail("layer_sizes", sizes, "must list at least an input and an output size, all positive "
          "integers, e.g. (784, 512, 10).")
  if not c.beta > 0:
    _fail("beta", c.beta, "the nudged phase needs beta > 0 (its sign is set by "
          "config.nudging); beta = 0 makes the EP contrast 0/0.")
  lrs = tuple(c.learning_rates)
  if len(lrs) != len(sizes) - 1:
    _fail("learning_rates", lrs, f"needs one rate per weight layer: layer_sizes {sizes} has "
          f"{len(sizes) - 1} weight layers, so give {len(sizes) - 1} rates.")
  if any(not lr > 0 for lr in lrs):
    _fail("learning_rates", lrs, "every rate must be > 0.")
  _choice(c, "lr_schedule", optim.SCHEDULES)
  if not 0.0 <= c.lr_final_fraction <= 1.0:
    _fail("lr_final_fraction", c.lr_final_fraction, "must be in [0, 1].")
  if not 0.0 <= c.momentum < 1.0:
    _fail("momentum", c.momentum, "must be in [0, 1).")
  if not c.init_scale > 0:
    _fail("init_scale", c.init_scale, "must be > 0.")
  if c.model == "rate_ep" and c.update_mode == "online" and c.nudging == "symmetric":
    _fail("update_mode", c.update_mode, "online updates of rate EP (C-EP) need config.nudging "
          "'one_sided' or 'random_sign'; use update_mode='accumulated' for symmetric nudging.")
  if c.model == "eqspike":
    from eqspike_jax import eqspike  # pylint: disable=g-import-not-at-top
    if not 0.0 < c.gamma <= 1.0:
      _fail("gamma", c.gamma, "gamma = dt / tau must be in (0, 1].")
    _choice(c, "spike_mode", eqspike.SPIKE_MODES)
    _choice(c, "input_mode", eqspike.INPUT_MODES)
    _choice(c, "readout", eqspike.READOUTS)
    _choice(c, "pairing", eqspike.PAIRINGS)
    if c.debias and c.pairing != "same_step":
      _fail("debias", c.debias, "subtracts the self-coupling of same-step pairing; next-step "
            "pairing has none. Set pairing='same_step' or debias=False.")
    _positive_int(c, "readout_steps")
    if c.readout == "spike_count" and c.readout_steps > c.t_free:
      _fail("readout_steps", c.readout_steps, f"counts spikes over the end of the free phase, "
            f"so it must be <= t_free = {c.t_free}.")
    if c.nudging != "symmetric" and c.free_contrast and c.t_nudge > c.t_free:
      _fail("t_nudge", c.t_nudge, f"the free-phase contrast of one-sided nudging is gathered over "
            f"the last t_nudge steps of the free phase, so t_nudge must be <= t_free = {c.t_free}.")
  if c.train_subset and c.train_subset < c.batch_size:
    _fail("train_subset", c.train_subset, f"is smaller than one batch ({c.batch_size}).")


def from_file(path: str, variant: str = "") -> ml_collections.ConfigDict:
  """``get_config([variant])`` of a config file, as ``--config PATH[:variant]`` reads it.

  ``configs/`` is not a package, so notebooks and tests load its files by path.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"no config file {path!r}; the configs are in configs/.")
  name = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(f"configs.{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  # config_flags calls get_config() without an argument when no variant is given.
  return module.get_config(variant) if variant else module.get_config()
