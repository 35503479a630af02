"""Tests of config validation, that the shipped configs are valid, and that configs are jax-free."""

import glob
import math
import os
import re
import subprocess
import sys

import ml_collections
import pytest

from eqspike_jax import config_lib
from eqspike_jax import registry

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every experiment config; energy.py, alignment.py, frontier.py and curves.py configure
# measurements (the frontier trains its points from another config), not training runs.
SHIPPED = sorted(os.path.splitext(os.path.basename(p))[0]
                 for p in glob.glob(os.path.join(REPO_ROOT, "configs", "*.py"))
                 if os.path.basename(p) not in ("energy.py", "alignment.py", "frontier.py",
                                                 "curves.py"))


def _set(section=None, **fields):
  """A change to a config: shared fields, or the fields of ``config[section]``."""
  def mutate(c):
    target = c if section is None else c[section]
    for name, value in fields.items():
      target[name] = value
  return mutate


def _assert_refused(config, field):
  """Validation raises a ValueError whose message starts with ``config.<field> = ``."""
  with pytest.raises(ValueError, match=rf"^config\.{re.escape(field)} = ") as info:
    config_lib.validate(config)
  return str(info.value)


# (case, change to a valid config, the field the error must name).
INVALID = [
    ("negative t_free", _set(t_free=-1), "t_free"),
    ("t_nudge 0", _set(t_nudge=0), "t_nudge"),
    ("beta 0", _set(beta=0.0), "beta"),
    ("negative beta", _set(beta=-0.1), "beta"),
    ("infinite beta", _set(beta=float("inf")), "beta"),
    ("nan beta", _set(beta=float("nan")), "beta"),
    ("one rate for two layers", _set(learning_rates=(1e-3,)), "learning_rates"),
    ("three rates for two layers", _set(learning_rates=(1e-3,) * 3), "learning_rates"),
    ("negative rate", _set(learning_rates=(1e-3, -1e-3)), "learning_rates"),
    ("zero rate", _set(learning_rates=(0.0, 1e-3)), "learning_rates"),
    ("infinite rate", _set(learning_rates=(1e-3, float("inf"))), "learning_rates"),
    ("nan rate", _set(learning_rates=(float("nan"), 1e-3)), "learning_rates"),
    ("string rates", _set(learning_rates=("1e-3", "1e-3")), "learning_rates"),
    ("None rate", _set(learning_rates=(None, 1e-3)), "learning_rates"),
    ("bool rate", _set(learning_rates=(True, 1e-3)), "learning_rates"),
    ("unknown nudging", _set(nudging="sideways"), "nudging"),
    ("unknown activation", _set("rate_ep", activation="relu"), "rate_ep.activation"),
    ("unknown optimizer", _set(optimizer="rmsprop"), "optimizer"),
    ("unknown update mode", _set(update_mode="sometimes"), "update_mode"),
    ("unknown schedule", _set(lr_schedule="linear"), "lr_schedule"),
    ("unknown model", _set(model="lstm"), "model"),
    ("unknown init", _set(init="xavier"), "init"),
    ("online and symmetric", _set(update_mode="online", nudging="symmetric"), "update_mode"),
    ("batch_size 0", _set(batch_size=0), "batch_size"),
    ("steps_per_call 0", _set(steps_per_call=0), "steps_per_call"),
    ("negative checkpoint_every_steps", _set(checkpoint_every_steps=-5), "checkpoint_every_steps"),
    ("negative seed", _set(seed=-1), "seed"),
    ("negative eval_subset", _set(eval_subset=-1), "eval_subset"),
    ("no output layer", _set(layer_sizes=(784,), learning_rates=()), "layer_sizes"),
    ("a zero layer", _set(layer_sizes=(784, 0, 10)), "layer_sizes"),
    ("momentum 1", _set(momentum=1.0), "momentum"),
    ("init_scale 0", _set(init_scale=0.0), "init_scale"),
    ("final fraction above 1", _set(lr_final_fraction=1.5), "lr_final_fraction"),
    ("subset below one batch", _set(train_subset=20, batch_size=50), "train_subset"),
    ("negative num_devices", _set(num_devices=-1), "num_devices"),
    ("a conv layer of two numbers", _set(conv_layers=((8, 5),), learning_rates=(1e-3,) * 3),
     "conv_layers"),
    ("a conv layer of zero channels", _set(conv_layers=((0, 5, 2),),
                                           learning_rates=(1e-3,) * 3), "conv_layers"),
    ("pooling that does not divide", _set(conv_layers=((8, 4, 2),), learning_rates=(1e-3,) * 3),
     "conv_layers"),
    ("a kernel larger than the image", _set(conv_layers=((8, 29, 1),),
                                            learning_rates=(1e-3,) * 3), "conv_layers"),
    ("an image shape of another size", _set(conv_layers=((8, 5, 2),), input_shape=(32, 32, 1),
                                            learning_rates=(1e-3,) * 3), "input_shape"),
    ("a rate per dense layer only", _set(conv_layers=((8, 5, 2),)), "learning_rates"),
]


@pytest.mark.parametrize("case,mutate,field", INVALID, ids=[case for case, _, _ in INVALID])
def test_invalid_config_raises_naming_the_field(load_config, case, mutate, field):
  del case
  config = load_config("mnist_rate_ep", "quick")
  mutate(config)
  _assert_refused(config, field)


def test_conv_messages_say_what_is_wanted(load_config):
  config = load_config("mnist_rate_ep", "quick")
  config.conv_layers, config.learning_rates = ((8, 4, 2),), (1e-3,) * 3
  message = _assert_refused(config, "conv_layers")
  assert "(25, 25)" in message and "2x2 pooling" in message
  config.conv_layers = ((8, 5, 2),)
  config_lib.validate(config)  # 784-(8@12x12)-512-10: three weight layers.
  config.learning_rates = (1e-3,) * 2
  assert "make 3 weight layers" in _assert_refused(config, "learning_rates")


def test_non_finite_and_non_numeric_messages_say_what_is_wanted(load_config):
  config = load_config("mnist_rate_ep", "quick")
  config.beta = math.inf
  assert "finite beta > 0" in _assert_refused(config, "beta")
  config.beta = 0.1
  config.learning_rates = (1e-3, math.inf)
  message = _assert_refused(config, "learning_rates")
  assert "finite number > 0" in message and repr(math.inf) in message
  # Types first, with the tuple syntax: what '--config.learning_rates=(inf, 5e-4)' delivers
  # (one string in a tuple), and strings.
  for rates in (("(inf, 5e-4)",), ("fast", "slow")):
    config.learning_rates = rates
    message = _assert_refused(config, "learning_rates")
    assert "tuple of numbers" in message and "--config.learning_rates='(5e-4, 5e-4)'" in message


def test_a_tiny_beta_is_warned_about(load_config):
  config = load_config("mnist_rate_ep", "quick")
  assert not config_lib.warnings(config)
  config.beta = 1e-8
  (line,) = config_lib.warnings(config)
  assert "config.beta = 1e-08" in line and "rounding" in line


# EqSpike's own fields, on configs/mnist_eqspike.py:quick.
INVALID_EQSPIKE = [
    ("gamma 0", _set("eqspike", gamma=0.0), "eqspike.gamma"),
    ("gamma above 1", _set("eqspike", gamma=1.5), "eqspike.gamma"),
    ("unknown spike mode", _set("eqspike", spike_mode="poisson"), "eqspike.spike_mode"),
    ("unknown input mode", _set("eqspike", input_mode="voltage"), "eqspike.input_mode"),
    ("unknown readout", _set("eqspike", readout="vote"), "eqspike.readout"),
    ("unknown pairing", _set("eqspike", pairing="later"), "eqspike.pairing"),
    ("debias with next-step pairing", _set("eqspike", debias=True, pairing="next_step"),
     "eqspike.debias"),
    ("readout_steps 0", _set("eqspike", readout_steps=0), "eqspike.readout_steps"),
    ("spike count over more than the free phase",
     _set("eqspike", readout="spike_count", readout_steps=1000), "eqspike.readout_steps"),
    ("contrast longer than the free phase",
     _set(nudging="one_sided", t_nudge=100, t_free=60), "t_nudge"),
    ("negative num_devices", _set(num_devices=-1), "num_devices"),
    ("infinite beta", _set(beta=float("inf")), "beta"),
    ("infinite rate", _set(learning_rates=(float("inf"), 1e-3)), "learning_rates"),
]


@pytest.mark.parametrize("case,mutate,field", INVALID_EQSPIKE,
                         ids=[case for case, _, _ in INVALID_EQSPIKE])
def test_invalid_eqspike_config_raises_naming_the_field(load_config, case, mutate, field):
  del case
  config = load_config("mnist_eqspike", "quick")
  mutate(config)
  _assert_refused(config, field)


def test_debias_with_same_step_pairing_is_valid(load_config):
  config = load_config("mnist_eqspike", "quick")
  config.eqspike.pairing, config.eqspike.debias = "same_step", True
  config_lib.validate(config)


def test_online_and_symmetric_message_names_both_fields():
  config = config_lib.base_config("rate_ep")
  config.update_mode, config.nudging = "online", "symmetric"
  message = _assert_refused(config, "update_mode")
  assert "update_mode" in message and "nudging" in message
  config.nudging = "random_sign"  # Online updates with random sign are fine.
  config_lib.validate(config)


# ================================================================================================
# Model sections.
# ================================================================================================


@pytest.mark.parametrize("model", registry.MODELS)
def test_base_config_is_valid_and_holds_only_its_section(model):
  config = config_lib.base_config(model)
  config_lib.validate(config)
  assert config.model == model
  assert isinstance(config[model], ml_collections.ConfigDict)
  assert all(other not in config for other in registry.MODELS if other != model)
  assert config[model].to_dict() == registry.section_defaults(model).to_dict()


@pytest.mark.parametrize("model,other", [("rate_ep", "eqspike"), ("eqspike", "rate_ep")])
def test_another_models_section_is_refused_naming_it(model, other):
  config = config_lib.base_config(model)
  config[other] = registry.section_defaults(other)
  message = _assert_refused(config, other)
  assert f"model {other!r}" in message and f"config.model = {model!r}" in message


@pytest.mark.parametrize("model", registry.MODELS)
def test_missing_section_is_refused(model):
  config = config_lib.base_config(model)
  del config[model]
  message = _assert_refused(config, model)
  assert f"base_config({model!r})" in message


def test_switching_model_without_its_section_is_refused():
  """A rate-EP config relabelled as EqSpike has the wrong section: refused, naming both."""
  config = config_lib.base_config("rate_ep")
  config.model = "eqspike"
  with pytest.raises(ValueError, match="config.eqspike"):
    config_lib.validate(config)


def test_unknown_model_is_refused():
  with pytest.raises(ValueError, match=r"config\.model = 'lstm'.*'rate_ep'"):
    config_lib.base_config("lstm")


# ================================================================================================
# The shipped configs.
# ================================================================================================


def test_the_shipped_configs_are_found():
  assert {"mnist_rate_ep", "mnist_eqspike"} <= set(SHIPPED)


@pytest.mark.parametrize("variant", ["", "quick"])
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_are_valid(load_config, name, variant):
  config = load_config(name, variant)
  config_lib.validate(config)
  assert config.name == name
  assert config.model in registry.MODELS
  assert len(config.learning_rates) == config_lib.num_weight_layers(config)


@pytest.mark.parametrize("name,model", [("mnist_rate_ep", "rate_ep"), ("mnist_eqspike", "eqspike")])
def test_reference_configs_models(load_config, name, model):
  assert load_config(name).model == model


@pytest.mark.parametrize("name", SHIPPED)
def test_quick_variant_is_small(load_config, name):
  quick = load_config(name, "quick")
  # At most the dense configs' subsets; the convolutional ones take smaller ones (slower steps).
  assert 0 < quick.train_subset <= 2000 and 0 < quick.eval_subset <= 1000
  assert quick.num_epochs <= 2
  with pytest.raises(ValueError, match="'bogus'"):
    load_config(name, "bogus")


def test_from_file_refuses_a_missing_file():
  with pytest.raises(FileNotFoundError, match="no config file"):
    config_lib.from_file(os.path.join(REPO_ROOT, "configs", "no_such_config.py"))


def test_configs_do_not_import_jax():
  """Reading a config (config_lib, the registry's sections, the config files) stays jax-free, so
  a launcher can parse and check flags before paying for jax. A fresh interpreter, as this one
  has jax already."""
  code = "\n".join([
      "import sys",
      "from eqspike_jax import config_lib",
      "for model in ('rate_ep', 'eqspike'):",
      "  config_lib.base_config(model)",
      "for name in ('mnist_eqspike', 'mnist_rate_ep'):",
      "  for variant in ('', 'quick'):",
      "    assert config_lib.from_file(f'configs/{name}.py', variant).name == name",
      "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib'))",
      "print('jax' not in sys.modules, loaded)",
  ])
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "True []", result.stdout
