"""Tests of config validation, and that the shipped configs are valid."""

import re

import pytest

from eqspike_jax import config_lib


def _set(**fields):
  def mutate(c):
    for name, value in fields.items():
      c[name] = value
  return mutate


# (case, change to a valid config, the field the error must name).
INVALID = [
    ("negative t_free", _set(t_free=-1), "t_free"),
    ("t_nudge 0", _set(t_nudge=0), "t_nudge"),
    ("beta 0", _set(beta=0.0), "beta"),
    ("negative beta", _set(beta=-0.1), "beta"),
    ("one rate for two layers", _set(learning_rates=(1e-3,)), "learning_rates"),
    ("three rates for two layers", _set(learning_rates=(1e-3,) * 3), "learning_rates"),
    ("negative rate", _set(learning_rates=(1e-3, -1e-3)), "learning_rates"),
    ("unknown nudging", _set(nudging="sideways"), "nudging"),
    ("unknown activation", _set(activation="relu"), "activation"),
    ("unknown optimizer", _set(optimizer="rmsprop"), "optimizer"),
    ("unknown update mode", _set(update_mode="sometimes"), "update_mode"),
    ("unknown model", _set(model="lstm"), "model"),
    ("unknown init", _set(init="xavier"), "init"),
    ("online and symmetric", _set(update_mode="online", nudging="symmetric"), "update_mode"),
    ("batch_size 0", _set(batch_size=0), "batch_size"),
    ("steps_per_call 0", _set(steps_per_call=0), "steps_per_call"),
    ("negative checkpoint_every_steps", _set(checkpoint_every_steps=-5), "checkpoint_every_steps"),
    ("no output layer", _set(layer_sizes=(784,), learning_rates=()), "layer_sizes"),
    ("momentum 1", _set(momentum=1.0), "momentum"),
    ("init_scale 0", _set(init_scale=0.0), "init_scale"),
    ("subset below one batch", _set(train_subset=20, batch_size=50), "train_subset"),
]


@pytest.mark.parametrize("variant", ["", "quick"])
@pytest.mark.parametrize("name,model", [("mnist_rate_ep", "rate_ep"), ("mnist_eqspike", "eqspike")])
def test_shipped_configs_are_valid(load_config, name, model, variant):
  config = load_config(name, variant)
  config_lib.validate(config)
  assert config.name == name
  assert config.model == model
  assert len(config.learning_rates) == len(config.layer_sizes) - 1


# EqSpike's own fields, on configs/mnist_eqspike.py:quick.
INVALID_EQSPIKE = [
    ("gamma 0", _set(gamma=0.0), "gamma"),
    ("gamma above 1", _set(gamma=1.5), "gamma"),
    ("unknown spike mode", _set(spike_mode="poisson"), "spike_mode"),
    ("unknown input mode", _set(input_mode="voltage"), "input_mode"),
    ("unknown pairing", _set(pairing="later"), "pairing"),
    ("debias with next-step pairing", _set(debias=True, pairing="next_step"), "debias"),
    ("spike count over more than the free phase",
     _set(readout="spike_count", readout_steps=1000), "readout_steps"),
    ("contrast longer than the free phase",
     _set(nudging="one_sided", t_nudge=100, t_free=60), "t_nudge"),
    ("negative num_devices", _set(num_devices=-1), "num_devices"),
]


@pytest.mark.parametrize("case,mutate,field", INVALID_EQSPIKE,
                         ids=[case for case, _, _ in INVALID_EQSPIKE])
def test_invalid_eqspike_config_raises_naming_the_field(load_config, case, mutate, field):
  del case
  config = load_config("mnist_eqspike", "quick")
  mutate(config)
  with pytest.raises(ValueError, match=rf"^config\.{re.escape(field)} = "):
    config_lib.validate(config)


def test_quick_variant_is_small(load_config):
  quick = load_config("mnist_rate_ep", "quick")
  assert (quick.train_subset, quick.eval_subset, quick.num_epochs) == (2000, 1000, 2)
  with pytest.raises(ValueError, match="'bogus'"):
    load_config("mnist_rate_ep", "bogus")


def test_base_config_is_valid():
  config_lib.validate(config_lib.base_config())


@pytest.mark.parametrize("case,mutate,field", INVALID, ids=[case for case, _, _ in INVALID])
def test_invalid_config_raises_naming_the_field(load_config, case, mutate, field):
  del case
  config = load_config("mnist_rate_ep", "quick")
  mutate(config)
  with pytest.raises(ValueError, match=rf"^config\.{re.escape(field)} = "):
    config_lib.validate(config)


def test_online_and_symmetric_message_names_both_fields():
  config = config_lib.base_config()
  config.update_mode, config.nudging = "online", "symmetric"
  with pytest.raises(ValueError) as info:
    config_lib.validate(config)
  assert "update_mode" in str(info.value) and "nudging" in str(info.value)
  config.nudging = "random_sign"  # Online updates with random sign are fine.
  config_lib.validate(config)
