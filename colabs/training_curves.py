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
# # Training curves: EqSpike and rate-based EP on MNIST
#
# Test accuracy after every epoch of the spiking network trained by spike-driven, local
# Equilibrium Propagation (EqSpike) and of the rate-based EP baseline, both 784-512-10, read
# from the run summaries committed in `results/` (the default configs and the variants that
# decided them), next to the 97.6 % the EqSpike paper reports. With `QUICK` checked the
# notebook also trains both models' quick configs briefly (500 training images, 2 epochs) and
# plots those curves beside the committed ones.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/eqspike-jax/eqspike-jax/blob/main/colabs/training_curves.ipynb)

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
import glob
import json
import tempfile

from IPython.display import Image, display

from eqspike_jax import config_lib
from eqspike_jax import notebook_utils
from eqspike_jax import plots
from eqspike_jax import train

# configs/, runs/ and FIGURE_DIR below are relative to the repository root.
notebook_utils.enter_repo_root()

# %%
QUICK = False  #@param {type:"boolean"}
FIGURE_DIR = "colabs/figures"  #@param {type:"string"}
PAPER_ACCURACY = 0.976  #@param {type:"number"}

FIGURES = ["training_curves.png"]  # What this notebook writes into FIGURE_DIR.

# %% [markdown]
# ## The committed runs
#
# Each `results/*.json` is the summary `train.train_and_evaluate` wrote at the end of a full
# run (60,000 training images, 10,000 test images); the command that produced it is inside.

# %%
DEFAULTS = {"results/mnist_eqspike.json": "EqSpike, default config",
            "results/mnist_rate_ep.json": "rate EP, default config"}
# What each variant changed from its model's default config (see its "config" and "command").
VARIANT_LABELS = {
    "mnist_eqspike_same_step_constant_lr": "EqSpike, same-step pairing, constant rate",
    "mnist_eqspike_same_step_cosine6": "EqSpike, same-step pairing",
    "mnist_eqspike_same_step_debias_cosine6": "EqSpike, same-step pairing, debiased",
    "mnist_rate_ep_hard_sigmoid_symmetric": "rate EP, hard sigmoid, symmetric, beta 0.5",
}


def read_summary(path):
  with open(path) as f:
    return json.load(f)


def variant_label(path):
  stem = os.path.splitext(os.path.basename(path))[0]
  return VARIANT_LABELS.get(stem, stem)


summaries = {label: read_summary(path) for path, label in DEFAULTS.items()}
for path in sorted(glob.glob("results/variants/*.json")):
  summary = read_summary(path)
  # A variant that became the default is the same run under a second name: draw it once.
  if all(summary["test_accuracy_per_epoch"] != s["test_accuracy_per_epoch"]
         for s in summaries.values()):
    summaries[variant_label(path)] = summary

for label, summary in summaries.items():
  acc = summary["test_accuracy_per_epoch"]
  print(f"{label:45s} {len(acc):2d} epochs: first {100 * acc[0]:.2f} %, best "
        f"{100 * max(acc):.2f} %, last {100 * acc[-1]:.2f} %")

# %% [markdown]
# ## Quick runs (`QUICK`)
#
# The quick variant of each config, on its first 500 training images for 2 epochs, tested on the
# first 500 test images: the real code path in seconds, far from converged.

# %%
QUICK_CONFIGS = {"EqSpike, quick config": "mnist_eqspike",
                 "rate EP, quick config": "mnist_rate_ep"}
quick = {}
if QUICK:
  for label, name in QUICK_CONFIGS.items():
    config = config_lib.from_file(f"configs/{name}.py", "quick")
    config.train_subset, config.eval_subset = 500, 500
    config.download = IN_COLAB  # Outside Colab the data is prepared: fail fast if it is not.
    with tempfile.TemporaryDirectory(prefix="training_curves_") as workdir:
      quick[label] = train.train_and_evaluate(
          config, workdir, command=f"colabs/training_curves.py (QUICK) {name}")
    print(f"{label}: test accuracy per epoch {quick[label]['test_accuracy_per_epoch']}")

# %% [markdown]
# ## The figure

# %%
axes = plots.panels(1, 2 if quick else 1, figsize=(14, 6) if quick else (8, 6))
plots.training_curves(summaries, ax=axes[0], paper_accuracy=PAPER_ACCURACY,
                      highlight=list(DEFAULTS.values()),
                      title="Full runs (results/): 60,000 training images")
if quick:
  plots.training_curves(quick, ax=axes[1], paper_accuracy=PAPER_ACCURACY,
                        title="Quick configs, just trained: 500 training images")
path = plots.save(axes[0].figure, os.path.join(FIGURE_DIR, "training_curves.png"))
display(Image(filename=path))

# %% [markdown]
# Bold lines are the default configs; thin lines are the variants that decided them (pairing of
# spikes with state changes, learning-rate schedule, debiasing; for rate EP, the hard sigmoid
# with symmetric nudging). At a constant learning rate EqSpike peaks early and then drifts down:
# the spike noise in its updates needs a decaying rate, which is why the default config uses a
# cosine schedule.

# %%
notebook_utils.check_figures(FIGURE_DIR, FIGURES)
