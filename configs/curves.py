r"""Issue 10's headline groups as test accuracy per epoch, one curve per seed, with the anchors.

  python -m launch.curves --config configs/curves.py \
      --output results/issue10_seeds.json --figure results/issue10_curves.png

Each panel lists the committed summaries of one config over its seeds (glob patterns, relative
to the checkout); the headline (mean and sample std of the final accuracies) is computed from
them. The references are published anchors (../shared/EQSPIKE.md section 6), issue 10's targets
and our one-hidden-layer default. ``:dense`` draws the one-hidden-layer defaults the same way.
"""

import ml_collections

LIN_2024 = "Lin et al. 2024, spiking conv EP"


def _panel(title, runs, references):  # References as pairs: ConfigDict keys cannot hold dots.
  return ml_collections.ConfigDict({"title": title, "runs": tuple(runs),
                                    "references": tuple(references.items())})


def get_config(variant: str = ""):
  c = ml_collections.ConfigDict()
  dense_mnist = ("results/mnist_eqspike.json", "results/seeds/mnist_eqspike_seed[12].json")
  dense_fashion = ("results/fashion_mnist_eqspike_seed0.json",
                   "results/seeds/fashion_mnist_eqspike_seed[12].json")
  if variant == "dense":
    c.panels = (
        _panel("EqSpike 784-512-10, MNIST", dense_mnist, {"paper, EqSpike": 0.976}),
        _panel("EqSpike 784-512-10, Fashion-MNIST", dense_fashion, {LIN_2024: 0.9111}),
    )
    return c
  c.panels = (
      _panel("Conv EqSpike, MNIST",
             ("results/mnist_conv_eqspike_seed0.json",),
             {LIN_2024: 0.9903, "issue 10 target": 0.991, "784-512-10 default": 0.9817}),
      _panel("Conv EqSpike, Fashion-MNIST",
             ("results/fashion_mnist_conv_eqspike_seed0.json",
              "results/seeds/fashion_mnist_conv_eqspike_seed[12].json"),
             {LIN_2024: 0.9111, "issue 10 target": 0.915, "784-512-10 default": 0.8785}),
      _panel("EqSpike 784-512-512-10 (graded input), MNIST",
             ("results/mnist_deep_eqspike_graded_seed0.json",
              "results/seeds/mnist_deep_eqspike_graded_seed[12].json"),
             {"Ernoult et al. 2019, rate EP": 0.98, "issue 10 target": 0.983,
              "784-512-10 default": 0.9817}),
  )
  return c
