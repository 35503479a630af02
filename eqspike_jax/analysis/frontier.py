"""The accuracy-energy frontier: real training runs against their energy per example (issue 11).

Each point of ``configs/frontier.py`` is the base config with a few fields changed (the knobs
that set the event count: phase lengths, gamma, input coding). A point is trained in its own
workdir (``train.train_and_evaluate``, so an interrupted sweep resumes where it stopped), its
events are measured on test images at its last checkpoint (``energy_report``) and it becomes
one row: test accuracy per epoch, energy per inference and per training example on every chip
profile, wall time and samples/s. The Pareto front is taken over (energy, accuracy).
"""

import ast
import json
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import ml_collections

from eqspike_jax import config_lib
from eqspike_jax import workdir as workdir_lib
from eqspike_jax.analysis import energy
from eqspike_jax.analysis import energy_report


def parse_override(text: str) -> Tuple[str, object]:
  """``"eqspike.input_mode=current"`` -> ``("eqspike.input_mode", "current")``.

  The value is a Python literal (``30``, ``0.5``, ``(1, 2)``), or else the string itself, as
  ``--config.FIELD=VALUE`` reads it.
  """
  field, sep, value = text.partition("=")
  if not sep or not field.strip():
    raise ValueError(f"override {text!r}: write it as FIELD=VALUE (e.g. t_free=30).")
  try:
    return field.strip(), ast.literal_eval(value.strip())
  except (ValueError, SyntaxError):
    return field.strip(), value.strip()


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Sequence[str]) -> ml_collections.ConfigDict:
  """A copy of ``config`` with each ``FIELD=VALUE`` set; an unknown field is refused."""
  out = ml_collections.ConfigDict(config.to_dict())
  for text in overrides:
    field, value = parse_override(text)
    *path, name = field.split(".")
    node = out
    for part in path:
      if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
        raise ValueError(f"override {text!r}: the config has no section {part!r}.")
      node = node[part]
    if name not in node:
      raise ValueError(f"override {text!r}: the config has no field {field!r}.")
    if isinstance(node[name], float) and isinstance(value, int):
      value = float(value)
    node[name] = value
  return out


def point_configs(c: ml_collections.ConfigDict) -> List[Tuple[str, Tuple[str, ...],
                                                               ml_collections.ConfigDict]]:
  """``(name, overrides, config)`` of every point, each config validated before any training."""
  path, _, variant = c.base_config.partition(":")
  base = config_lib.from_file(path, variant)
  base.seed = c.seed
  if c.data_dir:
    base.data_dir = c.data_dir
  points, names = [], set()
  for name, overrides in c.points:
    if name in names:
      raise ValueError(f"frontier point {name!r} appears twice in points.")
    names.add(name)
    config = apply_overrides(base, overrides)
    config.name = f"{base.name}_frontier_{name}"
    if c.num_epochs:
      config.num_epochs = c.num_epochs
    config_lib.validate(config)
    points.append((name, tuple(overrides), config))
  return points


def train_command(c: ml_collections.ConfigDict, workdir: str, overrides: Sequence[str],
                  name: str) -> str:
  """The ``launch.train`` command that trains (or resumes) one point on its own."""
  flags = [f"--config.name={name}", f"--config.seed={c.seed}"]
  flags += [f"--config.{o}" for o in overrides]
  if c.num_epochs:
    flags.append(f"--config.num_epochs={c.num_epochs}")
  return " ".join(["python -m launch.train --config", c.base_config, "--workdir", workdir, *flags])


def point_row(name: str, overrides: Sequence[str], summary: Dict, report: Dict) -> Dict:
  """One point: its run's accuracy and throughput, and its energy per example per chip (uJ)."""
  chips = {key: {phase: chip[phase]["total_pj"] / energy.PJ_PER_UJ
                 for phase in ("inference", "training")}
           for key, chip in report["neuromorphic"].items()}
  return {"name": name, "overrides": list(overrides),
          "command": summary.get("command", ""), "git_sha": summary.get("git_sha", ""),
          "test_accuracy_per_epoch": summary["test_accuracy_per_epoch"],
          "final_test_accuracy": summary["final_test_accuracy"],
          "wall_time_s": summary.get("wall_time_s"), "samples_per_s": summary.get("samples_per_s"),
          "energy_uj": chips, "counts": report["counts"], "network": report["network"]}


def pareto(rows: Sequence[Dict], chip: str, phase: str) -> List[str]:
  """Names of the points no other point beats on both energy (lower) and accuracy (higher)."""
  def cost(r):
    return r["energy_uj"][chip][phase]
  front = []
  for r in rows:
    dominated = any(cost(o) <= cost(r) and o["final_test_accuracy"] >= r["final_test_accuracy"]
                    and (cost(o) < cost(r) or o["final_test_accuracy"] > r["final_test_accuracy"])
                    for o in rows)
    if not dominated:
      front.append(r["name"])
  return sorted(front, key=lambda n: cost(next(r for r in rows if r["name"] == n)))


def target_check(rows: Sequence[Dict], target: ml_collections.ConfigDict) -> Dict:
  """The points that meet the target (accuracy, inference and training energy on one chip)."""
  meets = [r["name"] for r in rows
           if r["final_test_accuracy"] >= target.accuracy
           and r["energy_uj"][target.chip]["inference"] <= target.inference_uj
           and r["energy_uj"][target.chip]["training"] <= target.training_uj]
  return {**target.to_dict(), "met_by": meets}


def sweep(c: ml_collections.ConfigDict, root: str, train_fn: Callable,
          log: Callable = print) -> Dict:
  """Trains (or resumes) every point under ``root``, measures its energy, returns the report.

  ``train_fn(config, workdir, command)`` returns the run's summary (``train.train_and_evaluate``);
  a point whose workdir already holds a finished summary is not trained again.
  """
  energy_cfg = config_lib.from_file(c.energy_config)
  energy_cfg.num_examples = c.energy_examples
  configs = point_configs(c)  # Every point checked before the first trains.
  rows = []
  for i, (name, overrides, config) in enumerate(configs):
    workdir = os.path.join(root, name)
    command = train_command(c, workdir, overrides, config.name)
    summary = _finished_summary(workdir, config)
    if summary is None:
      log(f"[{i + 1}/{len(c.points)}] {name}: training ({command})")
      summary = train_fn(config, workdir, command)
    report = energy_report.report_for_workdir(workdir, energy_cfg)
    rows.append(point_row(name, overrides, summary, report))
    r = rows[-1]
    log(f"[{i + 1}/{len(c.points)}] {name}: test {r['final_test_accuracy']:.4f}, "
        + ", ".join(f"{chip} {e['inference']:.3g} / {e['training']:.3g} uJ"
                    for chip, e in r["energy_uj"].items()))
  chips = sorted(rows[0]["energy_uj"]) if rows else []
  return {"config": c.to_dict(), "git_sha": workdir_lib.git_sha(), "points": rows,
          "pareto": {chip: {phase: pareto(rows, chip, phase) for phase in ("inference",
                                                                          "training")}
                     for chip in chips},
          "target": target_check(rows, c.target)}


def _finished_summary(workdir: str, config: ml_collections.ConfigDict) -> Optional[Dict]:
  """The summary of a run that trained all of ``config``'s epochs there, else None."""
  path = os.path.join(workdir, workdir_lib.SUMMARY_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    summary = json.load(f)
  done = len(summary.get("test_accuracy_per_epoch", [])) >= config.num_epochs
  return summary if done else None


def figure(report: Dict, chip: str = "loihi"):
  """Test accuracy against energy per inference and per training example, front joined."""
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top
  from eqspike_jax import plots  # pylint: disable=g-import-not-at-top
  axes = plots.panels(1, 2, figsize=(11.0, 4.2))
  rows, target = report["points"], report["target"]
  for ax, phase in zip(axes, ("inference", "training")):
    for r in rows:
      ax.scatter(r["energy_uj"][chip][phase], 100 * r["final_test_accuracy"], color="C0")
      ax.annotate(r["name"], (r["energy_uj"][chip][phase], 100 * r["final_test_accuracy"]),
                  fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = [next(r for r in rows if r["name"] == n) for n in report["pareto"][chip][phase]]
    ax.plot([r["energy_uj"][chip][phase] for r in front],
            [100 * r["final_test_accuracy"] for r in front], color="C1", lw=1, label="Pareto front")
    ax.axhline(100 * target["accuracy"], color="0.6", lw=0.8, ls="--")
    ax.axvline(target[f"{phase}_uj"], color="0.6", lw=0.8, ls="--", label="target")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    what = "training example" if phase == "training" else "inference"
    ax.set_xlabel(f"energy per {what} ({chip}, uJ)")
    ax.set_ylabel("MNIST test accuracy (%)")
    ax.legend(fontsize=7)
  return axes[0].figure
