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
# # STDP: how EqSpike's weight updates depend on spike timing
#
# EqSpike changes a synapse only when one of its two neurons spikes, by the change of the other
# neuron's state: `dW = (1/beta) sum_t [S_pre(t) du_post(t) + du_pre(t) S_post(t)]`. This
# notebook measures the resulting dependence on `t_post - t_pre` two ways
# (`eqspike_jax/analysis/stdp.py`, EQSPIKE.md section 5): one synapse in isolation, with a
# presynaptic spike and a postsynaptic neuron driven to spike at a chosen time; and in vivo,
# over every pair of spikes in the nudged phases of real training on MNIST.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/eqspike-jax/eqspike-jax/blob/main/colabs/stdp.ipynb)

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
from IPython.display import Image, display
import jax
import numpy as np

from eqspike_jax import config_lib
from eqspike_jax import data as data_lib
from eqspike_jax import notebook_utils
from eqspike_jax import plots
from eqspike_jax import registry
from eqspike_jax import workdir as workdir_lib
from eqspike_jax.analysis import stdp
from eqspike_jax.models import eqspike

# configs/, runs/ and FIGURE_DIR below are relative to the repository root.
notebook_utils.enter_repo_root()

# %%
QUICK = False  #@param {type:"boolean"}
WORKDIR = "runs/mnist_eqspike"  #@param {type:"string"}
GAMMA = 0.2  #@param {type:"number"}
BETA = 0.5  #@param {type:"number"}
AMPLITUDE = 1.0  #@param {type:"number"}
MAX_LAG = 15  #@param {type:"integer"}
NUM_EXAMPLES = 2000  #@param {type:"integer"}
IN_VIVO_MAX_LAG = 8  #@param {type:"integer"}
FIGURE_DIR = "colabs/figures"  #@param {type:"string"}

FIGURES = ["stdp_window.png", "stdp_in_vivo.png"]  # What this notebook writes into FIGURE_DIR.

# %% [markdown]
# ## One synapse in isolation
#
# The presynaptic neuron is an input (a spike source): it spikes once, at `t_pre`. The
# postsynaptic neuron rests until a current `AMPLITUDE` switches on and stays on until its first
# spike, delivered at `t_post`. The rule then changes the synapse by `du_post(t_pre) / beta`: a
# presynaptic spike that meets the postsynaptic state while it rises (before the spike)
# potentiates, one that meets it decaying afterwards depresses, by a factor `1 - gamma` less per
# step, so over the integration time `1 / gamma`. With `-beta` the same timing changes the weight
# the other way.
#
# Between two free neurons (dashed), the rule also has the term `du_pre S_post`, the same
# window seen from the other neuron: the sum is even in `t_post - t_pre`, as it must be for
# symmetric weights.

# %%
windows = {}
for kind, what in (("input", "input → free"), ("free", "free → free")):
  protocol = stdp.Protocol(gamma=GAMMA, amplitude=AMPLITUDE, kind=kind,
                           num_steps=4 * MAX_LAG + 8, post_onset=2 * MAX_LAG)
  for sign, name in ((1.0, "+beta"), (-1.0, "-beta")):
    if kind == "free" and sign < 0:
      continue  # The mirror image of +beta again; left out to keep the figure readable.
    windows[f"{what}, {name}"] = stdp.isolated_window(protocol, sign * BETA, MAX_LAG)
rise = stdp.steps_to_spike(GAMMA, AMPLITUDE)
dt, dw = windows["input → free, +beta"]
print(f"the drive takes {rise} steps to make the postsynaptic neuron spike")
print(f"potentiation at dt = 1..{rise}: {np.round(dw[(dt >= 1) & (dt <= rise)], 3).tolist()}")
print(f"depression at dt = 0, -1, -2: {np.round(dw[dt <= 0][::-1][:3], 3).tolist()}, "
      f"ratio per step {dw[dt == -1][0] / dw[dt == 0][0]:.3f} (1 - gamma = {1 - GAMMA})")

fig = plots.stdp_window(windows, title=f"Isolated synapse: gamma {GAMMA}, beta ±{BETA}, "
                                       f"drive {AMPLITUDE} until the first spike")
path = plots.save(fig, os.path.join(FIGURE_DIR, "stdp_window.png"))
display(Image(filename=path))

# %% [markdown]
# ## In vivo: spike pairs in the nudged phases of training
#
# The run's network sees `NUM_EXAMPLES` training images; from each free phase both nudged
# phases run, as in a training step. Every pair of a presynaptic and a postsynaptic spike within
# `IN_VIVO_MAX_LAG` steps is credited with the changes the rule made at those two spikes. Each
# phase on its own is dominated by timing correlations that do not depend on beta (the regular
# sigma-delta spike trains); they enter the `+beta` and `-beta` phases with opposite signs, so
# the figure shows what symmetric EP applies: both phases' changes per pair.
#
# The measurement is made at the run's initial weights (its first training step, where the
# outputs are far from their targets) and, without `QUICK`, at its last checkpoint.

# %%
if QUICK:
  config = config_lib.from_file("configs/mnist_eqspike.py", "quick")
  config.download = IN_COLAB  # Outside Colab the data is prepared: fail fast if it is not.
  networks = {}
  NUM_EXAMPLES = min(NUM_EXAMPLES, 200)
else:
  config, trained_params, step = workdir_lib.load_trained(WORKDIR)
  networks = {f"trained (step {step})": trained_params}
# The parameters the run started from: what the trainer draws from the config's seed at step 0.
networks = {"initial (step 0)": registry.init_params(config), **networks}
model = eqspike.model_from_config(config)
split = data_lib.load_split(config.dataset, "train", config.data_dir or None, config.download,
                            size=NUM_EXAMPLES)
y = jax.nn.one_hot(split.labels, config.layer_sizes[-1])

symmetric = {}
for name, params in networks.items():
  window = stdp.in_vivo_window(model, params, split.images, y, jax.random.PRNGKey(0),
                               IN_VIVO_MAX_LAG)
  for layer in range(len(params)):
    symmetric[(name, layer)] = stdp.symmetric_window(window, layer)
    fraction = stdp.stdp_sign_fraction(window["lags"], symmetric[(name, layer)])
    print(f"{name}, weight layer {layer}: STDP sign (potentiation for dt >= 1, depression for "
          f"dt <= 0) at {100 * fraction:.0f} % of lags")
lags = window["lags"]

# %%
axes = plots.panels(len(networks), 1, figsize=(8.0, 3.6 * len(networks)))
for ax, name in zip(axes, networks):
  plots.in_vivo_window(lags, {"hidden → output": symmetric[(name, 1)]}, ax=ax,
                       title=f"In vivo, hidden → output synapses, network {name}: "
                             f"{NUM_EXAMPLES} images")
path = plots.save(axes[0].figure, os.path.join(FIGURE_DIR, "stdp_in_vivo.png"))
display(Image(filename=path))

# %% [markdown]
# At the start of training the hidden → output synapses show the STDP sign structure in vivo:
# pairs where the presynaptic spike came first gain weight, pairs where it came at the same
# step or later lose it. Unlike the isolated window, the in-vivo change grows with the lag over
# a 20-step nudged phase: the nudge moves the output states steadily, so the farther apart two
# spikes, the more the state changed between them. The input → hidden synapses show no timing
# structure: the input spike trains do not depend on the nudge. Once the network is trained,
# most outputs sit on their targets, the nudge is small, and the timing structure vanishes into
# the noise.

# %%
notebook_utils.check_figures(FIGURE_DIR, FIGURES)
