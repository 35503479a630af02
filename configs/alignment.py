r"""The per-layer alignment sweep of EqSpike's estimate (eqspike_jax/analysis/alignment_report.py).

  python -m launch.alignment --config configs/alignment.py --output results/alignment.json

Every point compares the spike-driven estimate of one network on one batch of test images with
its noise-free twin, rate EP at the same beta and the true gradient, per layer. The sweeps vary
one setting at a time around the deep config's rule (T_nudge 30, beta 0.5, gamma 0.2,
symmetric, batch 1024; a trained network around its own run's settings), for each pairing. ``networks``: ``random:SIZES`` (a fresh init of the base config,
seed ``seed``) or ``trained:WORKDIR`` (the last checkpoint of a run; skipped with a line when
the workdir has none, so the sweep runs on a fresh clone).

Quick variant (seconds; tests): ``--config configs/alignment.py:quick``. The convolutional
network (configs/mnist_conv_eqspike.py), fresh and trained, at batch 256:

  python -m launch.alignment --config configs/alignment.py:conv \
      --output results/alignment_conv.json

Beta x T_nudge on the fresh conv network at batch 64 (the shipped 'state' pairing), every
combination, since a smaller beta cuts finite-beta bias but leaves the nudge nearer spike noise:

  python -m launch.alignment --config configs/alignment.py:conv_grid \
      --output results/alignment_conv_grid.json
"""

import ml_collections


def get_config(variant: str = ""):
  c = ml_collections.ConfigDict()
  c.base_config = "configs/mnist_deep_eqspike.py"  # Random networks take its rule settings.
  c.dataset = "mnist"
  c.data_dir = ""
  c.seed = 0
  c.batch_size = 1024
  c.settle_steps = 300       # Damped rate dynamics: residual < 1e-4 on every network measured.
  c.networks = ("random:784-512-10", "random:784-512-512-10", "random:784-512-512-512-10",
                "trained:runs/mnist_eqspike_seed1", "trained:runs/mnist_deep_eqspike_seed0")
  c.pairings = ("next_step", "state")
  c.grid = ()                # Sweeps to cross (e.g. ("beta", "t_nudge")); empty: one at a time.
  c.sweeps = ml_collections.ConfigDict()
  c.sweeps.t_nudge = (10, 20, 30, 60)
  c.sweeps.beta = (0.2, 0.5, 1.0)
  c.sweeps.gamma = (0.2, 0.5)
  c.sweeps.batch_size = (64, 256, 1024)
  if variant == "quick":
    c.batch_size = 32
    c.settle_steps = 150
    c.networks = ("random:784-16-16-10",)
    c.sweeps.t_nudge = (10, 20)
    c.sweeps.beta = (0.5,)
    c.sweeps.gamma = (0.2,)
    c.sweeps.batch_size = (16, 32)
  elif variant == "conv":  # The convolutional network, fresh and as trained (batch 256).
    c.base_config = "configs/mnist_conv_eqspike.py"
    c.batch_size = 256
    c.networks = ("config:configs/mnist_conv_eqspike.py", "trained:runs/mnist_conv_eqspike_seed0")
    c.sweeps.t_nudge = (10, 30, 60)
    c.sweeps.beta = (0.05, 0.1, 0.2, 0.5)  # Rate EP is orthogonal to the gradient at 0.5 here.
    c.sweeps.gamma = (0.2,)
    c.sweeps.batch_size = (64, 256)
  elif variant == "conv_grid":  # Beta x T_nudge on the fresh conv network, shipped pairing.
    c.base_config = "configs/mnist_conv_eqspike.py"
    c.batch_size = 64
    c.networks = ("config:configs/mnist_conv_eqspike.py",)
    c.pairings = ("state",)
    c.grid = ("beta", "t_nudge")
    c.sweeps.beta = (0.05, 0.1, 0.2, 0.5)
    c.sweeps.t_nudge = (30, 60, 120)
    c.sweeps.gamma = (0.2,)
    c.sweeps.batch_size = (64,)
  elif variant:
    raise ValueError(f"unknown config variant {variant!r}; known: 'quick', 'conv', "
                     f"'conv_grid'.")
  return c
