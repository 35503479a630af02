r"""The accuracy-energy frontier of EqSpike on MNIST (issue 11; eqspike_jax/analysis/frontier.py).

  python -m launch.frontier --config configs/frontier.py --workdir runs/frontier \
      --output results/frontier.json --figure results/frontier.png

Every point is configs/mnist_eqspike.py (784-512-10, 6 epochs, seed 0) with the fields listed
changed, trained in WORKDIR/NAME (a stopped sweep resumes: finished points are not retrained),
then its events are counted on 1,000 test images at its last checkpoint and priced with
configs/energy.py (Loihi and ODIN). Each point's own command is in the report.

Input coding: "spikes" sends every pixel as a rate-coded binary train over every step of every
phase; "current" sends it as one graded, delta-coded event per nonzero pixel when the image
arrives (Loihi 2's graded spikes; priced here at Loihi's binary SOP, an assumption) and the
input synapses are written once per nudged phase (events.py).

Quick variant (tests): ``:quick``, two points on a subset.
"""

import ml_collections


def get_config(variant: str = ""):
  c = ml_collections.ConfigDict()
  c.base_config = "configs/mnist_eqspike.py"
  c.energy_config = "configs/energy.py"
  c.energy_examples = 1000  # Test images the events are counted on.
  c.seed = 0
  c.data_dir = ""
  c.num_epochs = 0          # 0: the base config's.
  c.points = (
      ("spikes_t60_20", ()),  # The default network as shipped.
      ("spikes_t30_10", ("t_free=30", "t_nudge=10")),
      ("current_t60_20", ("eqspike.input_mode=current",)),
      ("current_t30_10", ("eqspike.input_mode=current", "t_free=30", "t_nudge=10")),
      ("current_t20_10_g0.3", ("eqspike.input_mode=current", "t_free=20", "t_nudge=10",
                               "eqspike.gamma=0.3")),
      # Past the knee: phases too short for the network to settle.
      ("spikes_t15_5_g0.5", ("t_free=15", "t_nudge=5", "eqspike.gamma=0.5")),
      ("current_t10_5_g0.5", ("eqspike.input_mode=current", "t_free=10", "t_nudge=5",
                              "eqspike.gamma=0.5")),
  )
  c.target = ml_collections.ConfigDict({"chip": "loihi", "accuracy": 0.976,
                                        "inference_uj": 10.0, "training_uj": 100.0})
  if variant == "quick":
    c.base_config = "configs/mnist_eqspike.py:quick"
    c.energy_examples = 100
    c.num_epochs = 1
    small = ("train_subset=500", "eval_subset=200", "t_free=10", "t_nudge=4")
    c.points = (("spikes", small), ("current", small + ("eqspike.input_mode=current",)))
  return c
