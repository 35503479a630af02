"""The alignment sweep: networks x pairings x one-at-a-time settings, as JSON and a figure.

``alignment.measure`` is the instrument; this module chooses where to point it (``configs/
alignment.py``), caches what does not depend on the rule (the references depend on the network,
the batch and beta only) and draws the curves of the README.
"""

import copy
import itertools
import os
import time
from typing import Callable, Dict, Iterator, List, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from eqspike_jax import config_lib
from eqspike_jax import data
from eqspike_jax import layers
from eqspike_jax import registry
from eqspike_jax import workdir as workdir_lib
from eqspike_jax.analysis import alignment
from eqspike_jax.models import eqspike

SWEPT = ("t_nudge", "beta", "gamma", "batch_size")


def load_network(spec: str, base: ml_collections.ConfigDict, seed: int):
  """``random:784-512-10``, ``config:FILE`` or ``trained:WORKDIR``: ``(config, params)``, or
  None (no checkpoint)."""
  kind, _, arg = spec.partition(":")
  if kind == "random":
    config = copy.deepcopy(base)
    sizes = tuple(int(n) for n in arg.split("-"))
    config.layer_sizes = sizes
    config.learning_rates = (config.learning_rates[0],) * (len(sizes) - 1)
    config.seed = seed
    return config, registry.init_params(config)
  if kind == "config":  # A fresh init of a config's own network (a convolutional one).
    config = config_lib.from_file(arg)
    config.seed = seed
    return config, registry.init_params(config)
  if kind == "trained":
    if not os.path.isdir(os.path.join(arg, "checkpoints")):
      return None
    config, params, _ = workdir_lib.load_trained(arg)
    return config, params
  raise ValueError(f"network {spec!r}: write random:SIZES (e.g. random:784-512-10), "
                   f"config:CONFIG_FILE or trained:WORKDIR.")


def points(c: ml_collections.ConfigDict, base: ml_collections.ConfigDict) -> Iterator[Dict]:
  """The rule settings of the sweep: the shipped point, then one setting varied at a time; or,
  with ``c.grid`` naming sweeps, every combination of those (the rest at the shipped value),
  since finite-beta bias and spike noise trade against each other through beta and T_nudge."""
  shipped = {"t_nudge": base.t_nudge, "beta": base.beta, "gamma": base.eqspike.gamma,
             "batch_size": c.batch_size}
  grid = tuple(c.get("grid", ()))
  unknown = [f for f in grid if f not in SWEPT]
  if unknown:
    raise ValueError(f"grid names {unknown}; it may cross only the sweeps {list(SWEPT)}.")
  for pairing in c.pairings:
    if grid:
      for values in itertools.product(*(c.sweeps[f] for f in grid)):
        yield {"pairing": pairing, "swept": "grid", **{**shipped, **dict(zip(grid, values))}}
      continue
    yield {"pairing": pairing, "swept": "shipped", **shipped}
    for field in SWEPT:
      for value in c.sweeps[field]:
        if value != shipped[field]:
          yield {"pairing": pairing, "swept": field, **{**shipped, field: value}}


def model_for(config: ml_collections.ConfigDict, point: Dict) -> eqspike.Model:
  config = copy.deepcopy(config)
  config.t_nudge, config.beta = point["t_nudge"], point["beta"]
  config.eqspike.gamma, config.eqspike.pairing = point["gamma"], point["pairing"]
  config.eqspike.debias, config.eqspike.window = False, 0
  config_lib.validate(config)
  return eqspike.model_from_config(config)


def _batch(c, size: int) -> Tuple[jnp.ndarray, jnp.ndarray]:
  split = data.load_split(c.dataset, "test", c.data_dir or None, size=size)
  return jnp.asarray(split.images), jax.nn.one_hot(split.labels, split.num_classes)


def measure_network(c, spec: str, config, params, x, y, log: Callable) -> List[Dict]:
  """Every point of one network; the references are computed once per (batch, beta)."""
  out, refs = [], {}
  for point in points(c, config):
    model = model_for(config, point)
    xb, yb = x[:point["batch_size"]], y[:point["batch_size"]]
    key = jax.random.PRNGKey(c.seed)
    ref_key = (point["batch_size"], point["beta"])
    start = time.time()
    if ref_key not in refs:
      refs[ref_key] = alignment.jitted_references(model, params, xb, yb, c.settle_steps)
    row = alignment.compare(model, params, xb, yb, key, refs[ref_key])
    row.update(point, network=spec, sizes=list(layers.sizes_of(layers.from_config(config))),
               seconds=time.time() - start)
    log(f"{spec} {point['pairing']:9s} {point['swept']:10s} T_nudge {point['t_nudge']:3d} beta "
        f"{point['beta']:.2f} gamma {point['gamma']:.1f} batch {point['batch_size']:5d}: spike vs "
        f"twin {_fmt(row['spike_vs_twin'])}, twin vs true {_fmt(row['twin_vs_true'])}")
    out.append(row)
  return out


def _fmt(values) -> str:
  return " ".join(f"{v:+.3f}" for v in values)


def sweep(c: ml_collections.ConfigDict, log: Callable = print) -> Dict:
  """The whole sweep of ``configs/alignment.py``."""
  base = config_lib.from_file(c.base_config)
  x, y = _batch(c, max(max(c.sweeps.batch_size), c.batch_size))
  rows, skipped = [], []
  for spec in c.networks:
    loaded = load_network(spec, base, c.seed)
    if loaded is None:
      log(f"{spec}: no checkpoint there; skipped (train it first to measure it).")
      skipped.append(spec)
      continue
    rows += measure_network(c, spec, *loaded, x, y, log)
  return {"config": c.to_dict(), "git_sha": workdir_lib.git_sha(), "devices": [
      str(d) for d in jax.devices()], "skipped_networks": skipped, "points": rows}


def figure(report: Dict):
  """Per-layer cosines of the random networks: spike vs twin by T_nudge and by batch size, and
  the twin and rate EP vs the true gradient by beta. Colour: depth; shade: layer (darker is
  nearer the output); solid: state pairing, dashed: next-step pairing."""
  from eqspike_jax import plots  # pylint: disable=g-import-not-at-top
  axes = plots.panels(1, 4, figsize=(19.0, 4.4))
  rows = [r for r in report["points"] if r["network"].startswith("random:")]
  panels = ((axes[0], "t_nudge", "spike_vs_twin"), (axes[1], "batch_size", "spike_vs_twin"),
            (axes[2], "beta", "twin_vs_true"), (axes[3], "beta", "rate_ep_vs_true"))
  for ax, field, key in panels:
    for (spec, pairing), group in _groups(rows, field).items():
      if key == "rate_ep_vs_true" and pairing != "state":
        continue  # Rate EP does not depend on the pairing.
      values = sorted({r[field] for r in group})
      cos = np.array([next(r[key] for r in group if r[field] == v) for v in values])
      depth = len(group[0]["sizes"]) - 2
      for l in range(cos.shape[1]):
        ax.plot(values, cos[:, l], "-" if pairing == "state" else "--", marker="o",
                color=f"C{depth - 1}", alpha=0.35 + 0.65 * (l + 1) / cos.shape[1],
                label=f"{depth} hidden, {pairing}, layer {l}")
    ax.set_xlabel(field.replace("_", " "))
    ax.set_ylabel("cosine, " + key.replace("_", " "))
    ax.axhline(0.9, color="0.6", lw=0.8)
    if field == "batch_size":
      ax.set_xscale("log")
  axes[0].legend(fontsize=5.5, ncol=2)
  for ax, title in zip(axes, ("spike vs noise-free twin", "spike vs twin, by batch",
                              "twin vs true gradient", "rate EP vs true gradient")):
    ax.set_title(title)
  return axes[0].figure


def _groups(rows, field):
  groups = {}
  for r in rows:
    if r["swept"] in (field, "shipped"):
      groups.setdefault((r["network"], r["pairing"]), []).append(r)
  return groups
