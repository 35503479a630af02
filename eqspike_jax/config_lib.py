"""Defaults shared by the experiment configs, and validation of a config before any work.

A config holds the shared fields at the top and the fields of its model in one section named
after it (``config.eqspike.*``, ``config.rate_ep.*``). This module imports no jax, so reading a
config file is cheap; the model sections' own checks are the models' (``registry.validate``).
"""

import importlib.util
import math
import numbers
import os

import ml_collections

from eqspike_jax import registry

OPTIMIZERS = ("adam", "sgd")
INITS = ("uniform", "glorot")
ROUNDINGS = ("stochastic", "nearest")  # Of low-precision synapses (quantize.py).
NUDGING_MODES = ("one_sided", "random_sign", "symmetric")
UPDATE_MODES = ("accumulated", "online")
SCHEDULES = ("constant", "cosine")


def base_config(model: str = "rate_ep") -> ml_collections.ConfigDict:
  """Every shared field with the rate-EP reference values, and ``model``'s default section."""
  c = ml_collections.ConfigDict()
  c.name = ""                  # The config's file name; recorded in the run summary.
  c.model = model              # One of registry.MODELS; its fields are in config[model].
  c.seed = 0

  # Data.
  c.dataset = "mnist"
  c.data_dir = ""              # Empty: $TFDS_DATA_DIR, else ~/tensorflow_datasets.
  c.download = True            # Prepare the set when missing (needs internet).
  c.train_subset = 0           # First N training examples; 0 = all.
  c.eval_subset = 0            # First N test examples; 0 = all.
  # Training images moved by up to this many pixels each way (augment.py); 0 = as they are.
  c.augment_shift = 0

  # Network.
  c.layer_sizes = (784, 512, 10)
  # Convolutions between the input and the dense layers, each (channels, kernel, pool): a
  # kernel x kernel valid convolution, then pool x pool average pooling (layers.Conv). The
  # input is then an image of input_shape (H, W, C), and layer_sizes lists the input's size and
  # the dense layers after the convolutions, e.g. (784, 10).
  c.conv_layers = ()
  c.input_shape = (28, 28, 1)
  c.init = "uniform"           # U(-1/sqrt(fan_in), 1/sqrt(fan_in)); or "glorot".
  c.init_scale = 1.0
  # Low-precision synapses (eqspike_jax/quantize.py): weights on a k-bit grid over
  # +-synapse_range / sqrt(fan_in); 0 bits = float32.
  c.synapse_bits = 0
  c.synapse_range = 8.0
  c.synapse_rounding = "stochastic"  # Or "nearest" (small updates are then lost).

  # Equilibrium propagation (every model).
  c.t_free = 30
  c.t_nudge = 10
  c.beta = 0.1
  c.nudging = "one_sided"      # Or "random_sign", "symmetric" (ep_core.Nudging).
  c.update_mode = "accumulated"  # "online" applies the update at every nudged step.

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
  c.stop_on_collapse = True        # Stop a run that learns nothing (monitor.check_health).

  c[model] = registry.section_defaults(model)
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


def fail(field, value, why):
  raise ValueError(f"config.{field} = {value!r}: {why}")


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _positive_int(c, field):
  if not _is_int(c[field]) or c[field] < 1:
    fail(field, c[field], "must be a positive integer.")


def _non_negative_int(c, field, meaning):
  if not _is_int(c[field]) or c[field] < 0:
    fail(field, c[field], f"must be a non-negative integer ({meaning}).")


def _choice(c, field, choices):
  if c[field] not in choices:
    fail(field, c[field], f"must be one of {list(choices)}.")


def _check_sections(c):
  """The model's section is there, and no other model's section is."""
  registry.check_name(c.model)
  if c.model not in c or not isinstance(c[c.model], ml_collections.ConfigDict):
    fail(c.model, None, f"a {c.model!r} run needs its section config.{c.model}; build the "
         f"config with config_lib.base_config({c.model!r}).")
  for other in registry.MODELS:
    if other != c.model and other in c:
      fail(other, "...", f"is the section of model {other!r}, but config.model = {c.model!r}: "
           f"remove it, or set config.model = {other!r}.")


def conv_shapes(input_shape, conv_layers):
  """The ``(H, W, C)`` of the input and of every convolution's output (after its pooling)."""
  shapes = [tuple(input_shape)]
  for l, (channels, kernel, pool) in enumerate(conv_layers):
    h, w, _ = shapes[-1]
    conv = (h - kernel + 1, w - kernel + 1)
    if min(conv) < 1 or conv[0] % pool or conv[1] % pool:
      fail("conv_layers", tuple(conv_layers), f"convolution {l}: a {kernel}x{kernel} kernel "
           f"on {shapes[-1]} gives {conv}, which {pool}x{pool} pooling must divide exactly; "
           f"change the kernel or the pooling.")
    shapes.append((conv[0] // pool, conv[1] // pool, channels))
  return tuple(shapes)


def num_weight_layers(c) -> int:
  return len(c.conv_layers) + len(c.layer_sizes) - 1


def _check_conv(c):
  convs, shape = c.conv_layers, c.input_shape
  if isinstance(convs, str) or any(
      not isinstance(layer, (tuple, list)) or len(layer) != 3
      or any(not _is_int(n) or n < 1 for n in layer) for layer in convs):
    fail("conv_layers", convs, "must be a tuple of (channels, kernel, pool) triples of "
         "positive integers, e.g. ((32, 5, 2), (64, 5, 2)); () for a dense network.")
  if not convs:
    return
  if len(shape) != 3 or any(not _is_int(n) or n < 1 for n in shape):
    fail("input_shape", shape, "must be (height, width, channels), e.g. (28, 28, 1).")
  if shape[0] * shape[1] * shape[2] != c.layer_sizes[0]:
    fail("input_shape", shape, f"has {shape[0] * shape[1] * shape[2]} units, but "
         f"layer_sizes[0] = {c.layer_sizes[0]} is the input's size.")
  conv_shapes(shape, convs)


def _check_sizes_and_rates(c):
  sizes = tuple(c.layer_sizes)
  if len(sizes) < 2 or any(not _is_int(n) or n < 1 for n in sizes):
    fail("layer_sizes", sizes, "must list at least an input and an output size, all positive "
         "integers, e.g. (784, 512, 10).")
  _check_conv(c)
  lrs = c.learning_rates
  if isinstance(lrs, str) or not isinstance(lrs, (tuple, list)) or any(
      not _is_number(lr) for lr in lrs):
    fail("learning_rates", lrs, "must be a tuple of numbers, one per weight layer, e.g. "
         "--config.learning_rates='(5e-4, 5e-4)' (a text that is not a tuple of number "
         "literals, such as '(inf, 5e-4)', arrives as a string).")
  lrs = tuple(lrs)
  n = num_weight_layers(c)
  if len(lrs) != n:
    fail("learning_rates", lrs, f"needs one rate per weight layer: conv_layers "
         f"{tuple(c.conv_layers)} and layer_sizes {sizes} make {n} weight layers, so give "
         f"{n} rates.")
  if any(not _is_number(lr) or not lr > 0 or not math.isfinite(lr) for lr in lrs):
    fail("learning_rates", lrs, "every rate must be a finite number > 0.")


def _check_synapses(c):
  bits = c.synapse_bits
  if not _is_int(bits) or bits < 0 or bits == 1 or bits > 16:
    fail("synapse_bits", bits, "must be 0 (float32 weights) or a bit width from 2 to 16.")
  if not _is_number(c.synapse_range) or not 0 < c.synapse_range < math.inf:
    fail("synapse_range", c.synapse_range, "must be a finite number > 0 (the grid's bound in "
         "units of 1/sqrt(fan_in)).")
  if c.synapse_rounding not in ROUNDINGS:
    fail("synapse_rounding", c.synapse_rounding, f"must be one of {list(ROUNDINGS)}.")


def _check_augment(c):
  _non_negative_int(c, "augment_shift", "pixels; 0 = no augmentation")
  height, width, channels = (tuple(c.input_shape) + (0, 0, 0))[:3]
  if c.augment_shift and not c.conv_layers and height * width * channels != c.layer_sizes[0]:
    fail("augment_shift", c.augment_shift, f"shifts images of input_shape {tuple(c.input_shape)}"
         f" ({height * width * channels} pixels), but layer_sizes[0] is {c.layer_sizes[0]}: set "
         f"input_shape to the input's (height, width, channels).")
  if c.augment_shift and 2 * c.augment_shift >= min(height, width):
    fail("augment_shift", c.augment_shift, f"must be under half the image's side "
         f"({min(height, width)} pixels), or nothing of the image is left.")


def validate(c: ml_collections.ConfigDict) -> None:
  """Raises ``ValueError`` naming the first invalid field and what it should be."""
  _check_sections(c)
  _choice(c, "init", INITS)
  _choice(c, "nudging", NUDGING_MODES)
  _choice(c, "update_mode", UPDATE_MODES)
  _choice(c, "optimizer", OPTIMIZERS)
  _choice(c, "lr_schedule", SCHEDULES)
  for field in ("t_free", "t_nudge", "batch_size", "num_epochs", "eval_batch_size",
                "steps_per_call", "scan_unroll"):
    _positive_int(c, field)
  _non_negative_int(c, "seed", "any seed")
  for field in ("train_subset", "eval_subset"):
    _non_negative_int(c, field, "0 = the whole split")
  for field in ("checkpoint_every_steps", "num_devices"):
    _non_negative_int(c, field, "0 disables it" if field.startswith("check") else "0 = all")
  _check_sizes_and_rates(c)
  _check_synapses(c)
  _check_augment(c)
  if not _is_number(c.beta) or not 0 < c.beta < math.inf:
    fail("beta", c.beta, "the nudged phase needs a finite beta > 0 (its sign is set by "
         "config.nudging); beta = 0 makes the EP contrast 0/0.")
  if not 0.0 <= c.lr_final_fraction <= 1.0:
    fail("lr_final_fraction", c.lr_final_fraction, "must be in [0, 1].")
  if not 0.0 <= c.momentum < 1.0:
    fail("momentum", c.momentum, "must be in [0, 1).")
  if not c.init_scale > 0:
    fail("init_scale", c.init_scale, "must be > 0.")
  if c.train_subset and c.train_subset < c.batch_size:
    fail("train_subset", c.train_subset, f"is smaller than one batch ({c.batch_size}).")
  registry.validate(c, fail)


def warnings(c: ml_collections.ConfigDict):
  """What is valid but probably not meant; the trainer logs each line before any work."""
  out = []
  if c.beta < 1e-4:
    out.append(f"config.beta = {c.beta}: the nudged and free states then differ by about "
               f"beta times their size, near float32 rounding (1e-7 relative), so the EP "
               f"contrast is mostly rounding noise; use beta >= 1e-3.")
  return out


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
