# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Spike rasters: one MNIST digit through the phases of EqSpike
#
# A trained EqSpike network (784-512-10) sees one test image: the free phase from rest, then
# the two nudged phases of symmetric EP, which start from the free end state, continue the same
# input spike trains and pull the output toward the target (`+beta`) or away from it
# (`-beta`). The raster shows the spikes of some active input pixels, some hidden neurons and
# all 10 output neurons; the traces show the neurons' states `u(t)`, whose differences between
# the two nudged phases are what the spike-driven learning rule turns into weight changes.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/eqspike-jax/eqspike-jax/blob/main/colabs/spike_rasters.ipynb)

# %%
# Set-up. In Colab: clone the repository and install it. Elsewhere: run from the checkout.
import os
import subprocess
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
  if not os.path.exists("/content/eqspike-jax"):
    subprocess.run(["git", "clone", "--depth", "1",
                    "https://github.com/eqspike-jax/eqspike-jax", "/content/eqspike-jax"],
                   check=True)
  os.chdir("/content/eqspike-jax")
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", ".[notebooks]"],
                 check=True)
  sys.path.insert(0, os.getcwd())  # The running kernel does not see the new install otherwise.

# %%
import tempfile

from IPython.display import Image, display
import jax
import numpy as np

from eqspike_jax import config_lib
from eqspike_jax import data as data_lib
from eqspike_jax import notebook_utils
from eqspike_jax import plots
from eqspike_jax import raster_plots
from eqspike_jax import train
from eqspike_jax import workdir as workdir_lib
from eqspike_jax.analysis import reports
from eqspike_jax.analysis import trajectories
from eqspike_jax.models import eqspike

# configs/, runs/ and FIGURE_DIR below are relative to the repository root.
notebook_utils.enter_repo_root()

# %%
QUICK = False  #@param {type:"boolean"}
WORKDIR = "runs/mnist_eqspike"  #@param {type:"string"}
EXAMPLE_INDEX = 30  #@param {type:"integer"}
INPUT_ROWS = 40  #@param {type:"integer"}
HIDDEN_ROWS = 40  #@param {type:"integer"}
HIDDEN_TRACES = 8  #@param {type:"integer"}
SCAN_IMAGES = 1000  #@param {type:"integer"}
FIGURE_DIR = "colabs/figures"  #@param {type:"string"}

FIGURES = ["spike_raster.png", "state_traces.png"]  # What this notebook writes into FIGURE_DIR.

# %% [markdown]
# ## A trained network
#
# `WORKDIR` is the workdir of a run of `python -m launch.train --config configs/mnist_eqspike.py
# --workdir runs/mnist_eqspike` (`make train`). Without one (or with `QUICK`), the notebook
# trains the quick config briefly (500 images, one epoch) in a temporary directory: a weaker
# network, the same dynamics.

# %%
def trained_run(workdir):
  """``(config, params, step)`` of the run in ``workdir``, or None when it holds none."""
  try:
    return workdir_lib.load_trained(workdir)
  except FileNotFoundError as e:
    print(f"No trained run in {workdir!r}: {e}")
    return None


run = None if QUICK else trained_run(WORKDIR)
source = WORKDIR
if run is None:
  source = "the quick config, trained here"
  print("Training the quick EqSpike config in a temporary directory.")
  quick_config = config_lib.from_file("configs/mnist_eqspike.py", "quick")
  quick_config.train_subset, quick_config.eval_subset, quick_config.num_epochs = 500, 500, 1
  quick_config.download = IN_COLAB  # Outside Colab the data is prepared: fail fast if it is not.
  with tempfile.TemporaryDirectory(prefix="spike_rasters_") as tmp:
    train.train_and_evaluate(quick_config, tmp, command="colabs/spike_rasters.py (quick)")
    run = workdir_lib.load_trained(tmp)
config, params, step = run
if not reports.is_eqspike_run(config):
  raise ValueError(f"{source} holds a {config.model!r} run; the rasters need an EqSpike one.")
model = eqspike.model_from_config(config)
dyn = model.dyn
print(f"{source}: step {step}, layers {tuple(config.layer_sizes)}, gamma {dyn.gamma}, "
      f"t_free {dyn.t_free}, t_nudge {dyn.t_nudge}, beta {model.nudging.beta}, {dyn.spike_mode} "
      f"spikes, {dyn.input_mode} input")

# %% [markdown]
# ## One test image through the three phases
#
# `trajectories.record` (`eqspike_jax/analysis/trajectories.py`) runs the phases of a training
# step on this one example with the same functions training uses, and keeps every layer's
# spikes and states.

# %%
test = data_lib.load_split(config.dataset, "test", config.data_dir or None, IN_COLAB,
                           size=max(EXAMPLE_INDEX + 1, SCAN_IMAGES))
key = jax.random.PRNGKey(config.seed)
# The nudge beta (y - u_o) is 0 where the output sits exactly on its target (states are clipped
# to [0, 1]), so a confidently right example is not nudged and teaches nothing. Which are they?
free = jax.jit(eqspike.free_phase, static_argnums=(0, 3))(
    model.arch, params, test.images[:SCAN_IMAGES], dyn, key)
onehot = np.eye(config.layer_sizes[-1])[test.labels[:SCAN_IMAGES]]
on_target = np.all(np.asarray(free.state[-1].u) == onehot, axis=-1)
predictions = np.asarray(model.readout(free)).argmax(-1)
wrong = np.flatnonzero(predictions != test.labels[:SCAN_IMAGES])
print(f"first {SCAN_IMAGES} test images: {on_target.mean():.0%} end the free phase exactly on "
      f"their target (no nudge); {len(wrong)} misclassified, the first at {wrong[:8].tolist()}")

x, label = test.images[EXAMPLE_INDEX], int(test.labels[EXAMPLE_INDEX])
y = jax.nn.one_hot(label, config.layer_sizes[-1])
# The phases run at +beta and -beta, beta = model.nudging.beta (the config's).
rec = jax.jit(trajectories.record, static_argnums=0)(model, params, x, y, key)
predicted = int(np.argmax(model.predict(params, x[None], key)[0]))
error = np.max(np.abs(np.asarray(y) - np.asarray(rec["free"]["u"][-1][-1])))
print(f"test image {EXAMPLE_INDEX}: label {label}, predicted {predicted}, output error at the "
      f"end of the free phase max |y - u| = {error:.2f}")

spikes_in = np.asarray(rec["input_spikes"])
print(f"input spikes per step: {spikes_in.sum() / len(spikes_in):.0f}")
for phase in trajectories.PHASES:
  counts = [int(np.sum(s)) for s in rec[phase]["spikes"]]
  steps = len(rec[phase]["spikes"][0])
  print(f"{phase:13s} {steps:3d} steps, spikes per free layer (hidden..., output) {counts}")

# %%
title = (f"Test image {EXAMPLE_INDEX} (label {label}, predicted {predicted}), "
         f"β = {model.nudging.beta}, network at step {step}")
fig = raster_plots.spike_raster(rec, num_input=INPUT_ROWS, num_hidden=HIDDEN_ROWS, label=label,
                                title=title)
path = plots.save(fig, os.path.join(FIGURE_DIR, "spike_raster.png"))
display(Image(filename=path))

# %% [markdown]
# Every neuron fires at a rate equal to its state `u` (sigma-delta spikes), so a regular spike
# train means a steady state. When the output ends the free phase off its target, the nudged
# phases pull it: the target's output neuron fires more at `+beta` (upper halves of its row) and
# less at `-beta` (lower halves), the wrongly active ones the other way, and the hidden neurons
# follow a little. The default `EXAMPLE_INDEX` (30) is one the trained network gets wrong, so
# the nudge has work to do. An example it already gets exactly right (the output clipped at 1
# for its class and 0 elsewhere: most of them, see the count above) is not nudged at all: both
# nudged phases repeat the free dynamics and its weight update is zero (try `EXAMPLE_INDEX = 0`).

# %%
fig = raster_plots.state_traces(rec, num_hidden=HIDDEN_TRACES, label=label, title=title)
path = plots.save(fig, os.path.join(FIGURE_DIR, "state_traces.png"))
display(Image(filename=path))

# %% [markdown]
# The states settle during the free phase; both nudged phases leave from the same free end
# state and, where the output is off its target, move apart: the target's output up at `+beta`
# and down at `-beta`. The gap between the two phases, divided by `2 beta`, is the error signal
# EP carries back into each neuron; paired with the spikes of its neighbours it becomes the
# weight update. The hidden panel shows the neurons with the largest gap (the most variable
# ones when there is none).

# %%
notebook_utils.check_figures(FIGURE_DIR, FIGURES)
