"""The energy report of a trained EqSpike run: its event counts, priced by ``analysis.energy``.

The counts are the typed ``events.StepEvents`` of a training step (``eqspike.Model.estimate``'s
``metrics["events"]``), either measured here at the run's last checkpoint on real images
(``measure_events``) or read from its summary (``counts_from_summary``, the training-time counts
of its last epoch). Inference is the free phase of that same step (``inference_counts``). The
report is plain JSON; ``format_table`` prints it.
"""

import dataclasses
import inspect
import json
import os
from typing import Dict, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from eqspike_jax import data as data_lib
from eqspike_jax import ep_core
from eqspike_jax import events
from eqspike_jax import metrics as metrics_lib
from eqspike_jax import workdir as workdir_lib
from eqspike_jax.analysis import energy
from eqspike_jax.analysis import reports
from eqspike_jax.models import eqspike

# Summaries written before the free phase always carried its weight writes omit them where
# the free phase does not learn, i.e. where they are 0.
_FREE_UPDATES_DEFAULT = {"free/synaptic_updates": 0.0}


@dataclasses.dataclass(frozen=True)
class EventCounts:
  """Per-example event counts of a trained network."""
  inference: events.PhaseEvents  # The free phase alone (no weight writes).
  training: events.StepEvents    # Every phase of one training step.
  source: str                    # Where they come from, for the report.


# ================================================================================================
# Event counts: measured, or from a run summary.
# ================================================================================================


def _weighted_mean(trees: Sequence[events.StepEvents], weights: Sequence[int]
                   ) -> events.StepEvents:
  total = float(sum(weights))
  return jax.tree.map(lambda *leaves: sum(w * float(v) for v, w in zip(leaves, weights)) / total,
                      *trees)


def measure_events(model: eqspike.Model, params, images: np.ndarray, labels: np.ndarray,
                   batch_size: int = 100, seed: int = 0, source: str = "") -> EventCounts:
  """Event counts per example of ``params`` on ``images``, averaged over every example.

  Training: one training step's estimate at these (fixed) weights, as the trainer runs it
  (``ep_core.split_step_key``, then ``model.estimate``), and its ``metrics["events"]``;
  inference: that step's free phase (``inference_counts``). An ``online`` run moves its weights
  during the nudged phase, which changes its counts only to first order in the learning rate.
  """
  if len(images) == 0:
    raise ValueError("measure_events got no examples; raise num_examples.")
  if len(images) != len(labels):
    raise ValueError(f"{len(images)} images but {len(labels)} labels.")
  num_classes = model.arch[-1].n_out

  @jax.jit
  def batch_events(params, x, label, key):
    y = jax.nn.one_hot(label, num_classes, dtype=x.dtype)
    betas, k_model = ep_core.split_step_key(key, model.nudging, x.dtype, None)
    _, metrics = model.estimate(params, x, y, betas, k_model)
    return metrics["events"]

  key = jax.random.PRNGKey(seed)
  per_batch, sizes = [], []
  for i, start in enumerate(range(0, len(images), batch_size)):
    # The counts are batch means; the last, smaller batch is weighted by its size.
    x = jnp.asarray(images[start:start + batch_size])
    label = jnp.asarray(labels[start:start + batch_size])
    per_batch.append(jax.device_get(batch_events(params, x, label, jax.random.fold_in(key, i))))
    sizes.append(len(x))
  training = _weighted_mean(per_batch, sizes)
  return EventCounts(inference_counts(training), training,
                     source or f"measured on {len(images)} examples")


def inference_counts(training: events.StepEvents) -> events.PhaseEvents:
  """The events of an inference: those of a training step's free phase.

  Prediction runs exactly that free phase (``eqspike.free_phase``: same dynamics, same number
  of steps), so its counts need no second run. A free-phase contrast's weight writes (one-sided
  runs) belong to training only.
  """
  return training.free.replace(synaptic_updates=0.0 * training.free.synaptic_updates)


def counts_from_summary(workdir: str) -> EventCounts:
  """The training-time counts of a run's last epoch (``summary.json``), on training data."""
  path = os.path.join(workdir, workdir_lib.SUMMARY_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist: let the run finish (or write it with "
                            f"python -m launch.summary), or measure the counts instead "
                            f"(--energy.counts=measured).")
  with open(path) as f:
    flat = json.load(f).get("events_per_example_last_epoch") or {}
  if not flat:
    raise ValueError(f"{path} holds no events_per_example_last_epoch (not an EqSpike run, or "
                     f"one from before event counting): use --energy.counts=measured.")
  training = events.StepEvents.from_flat({**_FREE_UPDATES_DEFAULT, **flat})
  return EventCounts(inference_counts(training), training,
                     f"{path}: events_per_example_last_epoch (training data, last epoch)")


def flat_counts(counts: EventCounts) -> Dict[str, Dict[str, float]]:
  """The counts by name (``free/synaptic_ops``, ...), as the report and the table list them."""
  as_floats = lambda tree: {k: float(v) for k, v in metrics_lib.flatten(tree).items()}
  return {"inference": as_floats({"free": counts.inference}),
          "training": as_floats(counts.training)}


# ================================================================================================
# The report: a JSON-serialisable dict.
# ================================================================================================


def _constants(cfg: ml_collections.ConfigDict) -> Dict[str, dict]:
  out = {}
  for key, chip in energy.neuromorphic_profiles(cfg).items():
    for field in ("e_sop", "e_neuron", "e_update"):
      out[f"{key}.{field}"] = dataclasses.asdict(getattr(chip, field))
  gpu = energy.gpu_profile(cfg)
  for field in ("e_mult", "e_add", "e_dram"):
    out[f"gpu.{field}"] = dataclasses.asdict(getattr(gpu, field))
  return out


def _ratio(gpu_pj: Optional[float], chip_pj: float) -> Optional[float]:
  if gpu_pj is None or chip_pj <= 0:
    return None
  return gpu_pj / chip_pj


def _gpu_entries(run: ml_collections.ConfigDict, cfg: ml_collections.ConfigDict) -> dict:
  """Every GPU scenario's counts and energies, and the measured figure when there is one."""
  sizes, gpu, model = tuple(run.layer_sizes), energy.gpu_profile(cfg), energy.gpu_model(cfg)
  out = {}
  for s in energy.gpu_scenarios(cfg, run):
    entry = {"settings": dataclasses.asdict(s)}
    for phase in ("inference", "training"):
      c = energy.gpu_counts(sizes, s, model, training=phase == "training")
      entry[phase] = {"counts": c, **energy.gpu_energy(c, gpu).as_dict()}
    out[s.name] = entry
  out.update(energy.published_gpu_entries(sizes, cfg, model))
  if cfg.gpu_measured.file:
    out.update(measured_gpu_entries(cfg.gpu_measured.file, sizes))
  measured = cfg.gpu_measured
  inf_pj = energy.measured_energy(measured.power_w, measured.inference_samples_per_s)
  train_pj = energy.measured_energy(measured.power_w, measured.train_samples_per_s)
  if inf_pj is not None or train_pj is not None:
    out["measured"] = {
        "settings": {"power_w": measured.power_w, "source": measured.source,
                     "inference_samples_per_s": measured.inference_samples_per_s,
                     "train_samples_per_s": measured.train_samples_per_s},
        "inference": None if inf_pj is None else {"total_pj": inf_pj},
        "training": None if train_pj is None else {"total_pj": train_pj}}
  return out


def measured_gpu_entries(path: str, sizes) -> dict:
  """``measured/batchB`` from the JSON of ``benchmarks.gpu_energy``: dynamic energy per example."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"energy config gpu_measured.file = {path!r}: no such file; write it "
                            f"on a GPU with python -m benchmarks.gpu_energy --out {path}.")
  with open(path) as f:
    measured = json.load(f)
  if list(measured["layer_sizes"]) != list(sizes):
    raise ValueError(f"{path} measured a {measured['layer_sizes']} network, this run is "
                     f"{list(sizes)}: measure the same layer sizes.")
  out = {}
  for batch, entry in measured["batches"].items():
    out[f"measured/batch{batch}"] = {
        "settings": {"source": f"{path} ({measured['device_kind']}, {measured['git_sha'][:10]})",
                     "batch": int(batch), "idle_w": entry["idle"]["mean_power_w"]},
        **{phase: {"total_pj": entry[phase]["dynamic_j_per_example"] * energy.PJ_PER_J,
                   "board_total_pj": entry[phase]["total_j_per_example"] * energy.PJ_PER_J,
                   "samples_per_s": entry[phase]["samples_per_s"],
                   "mean_power_w": entry[phase]["mean_power_w"]}
           for phase in ("inference", "training")}}
  return out


def build_report(counts: EventCounts, run: ml_collections.ConfigDict,
                 cfg: ml_collections.ConfigDict) -> dict:
  """Constants, counts, energies per example (pJ) and GPU / chip ratios, as plain JSON types."""
  chips = energy.neuromorphic_profiles(cfg)
  neuromorphic = {
      key: {"name": chip.name,
            "inference": energy.neuromorphic_inference(counts.inference, chip).as_dict(),
            "training": energy.neuromorphic_training(counts.training, chip).as_dict()}
      for key, chip in chips.items()}
  gpu = _gpu_entries(run, cfg)
  ratios = {name: {key: {phase: _ratio(entry[phase] and entry[phase]["total_pj"],
                                       neuromorphic[key][phase]["total_pj"])
                         for phase in ("inference", "training")}
                   for key in chips}
            for name, entry in gpu.items()}
  return {
      "network": {"model": run.model, "layer_sizes": list(run.layer_sizes),
                  "t_free": run.t_free, "t_nudge": run.t_nudge, "nudging": run.nudging,
                  "batch_size": run.batch_size, "input_mode": run.eqspike.input_mode},
      "constants": _constants(cfg),
      "gpu_model": {**dataclasses.asdict(energy.gpu_model(cfg)),
                    "doc": inspect.cleandoc(energy.gpu_counts.__doc__)},
      "counts": {"source": counts.source, **flat_counts(counts)},
      "neuromorphic": neuromorphic,
      "gpu": gpu,
      "ratios": ratios,
      "paper": {"inference_ratio": cfg.paper.inference_ratio,
                "training_ratio": cfg.paper.training_ratio, "source": cfg.paper.source},
  }


# ================================================================================================
# The report as a plain-text table.
# ================================================================================================


def _uj(pj: Optional[float]) -> str:
  return "-" if pj is None else f"{pj / energy.PJ_PER_UJ:.4g}"


def _x(ratio: Optional[float]) -> str:
  return "-" if ratio is None else f"{ratio:.3g}"


def _dram_share(entry: Optional[dict]) -> str:
  if not entry or "terms_pj" not in entry:
    return "-"
  dram = sum(v for k, v in entry["terms_pj"].items() if k.startswith("dram/"))
  return f"{100 * dram / entry['total_pj']:.0f}%"


def _run_line(run: Optional[dict]) -> str:
  if not run:
    return ""
  return f"; {run['workdir']}" + (f" at step {run['step']}" if run.get("step") is not None else "")


def _count_lines(report: dict) -> list:
  counts = report["counts"]
  lines = [f"Event counts per example ({counts['source']})",
           f"  {'':<22} {'inference':>12} {'training':>12}"]
  for key in sorted(set(counts["inference"]) | set(counts["training"])):
    inf = counts["inference"].get(key)
    lines.append(f"  {key:<22} {'-' if inf is None else f'{inf:.0f}':>12} "
                 f"{counts['training'].get(key, float('nan')):>12.0f}")
  return lines


def _neuromorphic_lines(report: dict) -> list:
  lines = ["Neuromorphic, uJ per example",
           f"  {'chip':<16} {'inference':>10} {'training':>10}  largest training term"]
  for key, e in report["neuromorphic"].items():
    terms = e["training"]["terms_pj"]
    top = max(terms, key=terms.get)
    lines.append(f"  {key:<16} {_uj(e['inference']['total_pj']):>10} "
                 f"{_uj(e['training']['total_pj']):>10}  {top} "
                 f"{100 * terms[top] / e['training']['total_pj']:.0f}%")
  return lines


def _gpu_lines(report: dict) -> list:
  lines = ["GPU (rate EP, same layer sizes), uJ per example",
           f"  {'scenario':<34} {'T f/n x ph':>11} {'MACs inf':>9} {'inference':>10} "
           f"{'DRAM':>5} {'training':>10} {'DRAM':>5}"]
  for name, e in report["gpu"].items():
    s = e["settings"]
    steps = f"{s['t_free']}/{s['t_nudge']}x{s['nudged_phases']}" if "t_free" in s else "-"
    macs = (sum(v for k, v in e["inference"]["counts"].items() if k.startswith("macs/"))
            if e["inference"] and "counts" in e["inference"] else None)
    lines.append(f"  {name:<34} {steps:>11} {'-' if macs is None else f'{macs:.3g}':>9} "
                 f"{_uj(e['inference'] and e['inference']['total_pj']):>10} "
                 f"{_dram_share(e['inference']):>5} "
                 f"{_uj(e['training'] and e['training']['total_pj']):>10} "
                 f"{_dram_share(e['training']):>5}")
  return lines


def _ratio_lines(report: dict) -> list:
  paper = report["paper"]
  lines = [f"Ratio GPU / neuromorphic (paper: ~{paper['inference_ratio']:.0e} inference, "
           f"~{paper['training_ratio']:.0e} training; {paper['source'].split(' (')[0]})"]
  chips = list(report["neuromorphic"])
  lines.append(f"  {'scenario':<34} " + " ".join(f"{c + ' inf':>10} {c + ' train':>11}"
                                                  for c in chips))
  for name, by_chip in report["ratios"].items():
    lines.append(f"  {name:<34} " + " ".join(
        f"{_x(by_chip[c]['inference']):>10} {_x(by_chip[c]['training']):>11}" for c in chips))
  return lines


def format_table(report: dict) -> str:
  """The report as plain text: constants, counts, energies (uJ per example) and ratios."""
  net = report["network"]
  lines = [f"Energy per example: {'-'.join(map(str, net['layer_sizes']))}, t_free "
           f"{net['t_free']}, t_nudge {net['t_nudge']}, {net['nudging']} nudging, input "
           f"{net['input_mode']}" + _run_line(report.get("run")), "", "Constants"]
  for name, c in report["constants"].items():
    lines.append(f"  {name:<16} {c['value']:>8g} {c['unit']:<3} {c['source']}")
  for section in (_count_lines, _neuromorphic_lines, _gpu_lines, _ratio_lines):
    lines += [""] + section(report)
  return "\n".join(lines)


# ================================================================================================
# A trained run, end to end.
# ================================================================================================


def _measured_counts(workdir: str, cfg: ml_collections.ConfigDict):
  """``(run, counts, step)``: the counts of the run's last checkpoint on ``cfg.split``."""
  run, params, step = workdir_lib.load_trained(workdir)
  split = data_lib.load_split(run.dataset, cfg.split, run.data_dir or None, run.download,
                              size=cfg.num_examples)
  counts = measure_events(eqspike.model_from_config(run), params, split.images, split.labels,
                          cfg.batch_size, cfg.seed, f"measured on {len(split.labels)} "
                          f"{run.dataset} {cfg.split} examples")
  return run, counts, step


def report_for_workdir(workdir: str, cfg: ml_collections.ConfigDict) -> dict:
  """Loads the EqSpike run in ``workdir``, counts its events and builds the report.

  Reads the workdir only (``workdir.load_trained`` creates nothing in it); writing the report
  is ``write_report``'s business.
  """
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f"workdir {workdir!r} does not exist: train a run with python -m "
                            f"launch.train --config configs/mnist_eqspike.py --workdir {workdir}.")
  run = workdir_lib.load_config(workdir)
  reports.require_eqspike_run(
      run, workdir, "the energy model needs the event counts of a spiking network, so point "
      "--workdir at an 'eqspike' run (the GPU side of the report already prices rate EP of the "
      "same layer sizes).")
  step = None
  if cfg.counts == "measured":
    run, counts, step = _measured_counts(workdir, cfg)
  elif cfg.counts == "summary":
    counts = counts_from_summary(workdir)
  else:
    raise ValueError(f"counts = {cfg.counts!r}: must be 'measured' or 'summary'.")
  report = build_report(counts, run, cfg)
  report["run"] = {"workdir": workdir, "config_name": run.get("name", ""), "step": step,
                   "trained_at_git_sha": workdir_lib.load_run_info(workdir)["git_sha"],
                   "measured_at_git_sha": workdir_lib.git_sha()}
  return report


def write_report(report: dict, paths: Sequence[str], optional: Sequence[str] = ()) -> list:
  """Writes the report to every path in order; a path in ``optional`` (the copy in the run's
  workdir) that cannot be written is skipped with one line. Returns the paths written."""
  return reports.write_json(report, paths, optional=optional, indent=2)
