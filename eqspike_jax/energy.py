"""Energy per example of EqSpike on neuromorphic chips against rate EP on a GPU (EQSPIKE.md 4).

Neuromorphic chips pay per event, so their energy comes from the event counts of the trained
spiking network (``eqspike.phase_events``)::

  inference = N_sop(free) e_sop + N_neuron(free) e_neuron
  training  = inference + N_sop(nudged) e_sop + N_neuron(nudged) e_neuron + N_syn_update e_update

A GPU pays per arithmetic operation and per memory word. It would run the SAME network (layer
sizes) rate-based (``rate_ep``): the multiply-accumulates (MACs) are ``flops.py``'s analytic
count, and the DRAM traffic follows an explicit model (``gpu_counts``). Energy =
``MACs (e_mult + e_add) + elementwise mults e_mult + adds e_add + DRAM words e_dram``. A
measured figure, power / throughput, is used when one is given.

Every constant is a ``Constant`` with its unit and source (``configs/energy.py``); energies are in
pJ per example throughout, the table prints uJ.
"""

import dataclasses
import inspect
import json
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from eqspike_jax import eqspike
from eqspike_jax import flops

PJ_PER_UJ = 1e6
PJ_PER_J = 1e12


# ================================================================================================
# Constants and hardware profiles.
# ================================================================================================


@dataclasses.dataclass(frozen=True)
class Constant:
  """A published figure (or a stated assumption): its value, unit and where it comes from."""
  value: float
  unit: str
  source: str


@dataclasses.dataclass(frozen=True)
class NeuromorphicProfile:
  """Energies per event of a spiking chip."""
  name: str
  e_sop: Constant     # A spike delivered to one synapse (synaptic operation).
  e_neuron: Constant  # One neuron updated for one time step.
  e_update: Constant  # One synaptic weight written by the learning rule.


@dataclasses.dataclass(frozen=True)
class GpuProfile:
  """Energies per float32 operation and per 32-bit DRAM word."""
  name: str
  e_mult: Constant
  e_add: Constant
  e_dram: Constant


@dataclasses.dataclass(frozen=True)
class GpuModel:
  """What a rate-EP step costs a GPU besides its matmuls (see ``configs/energy.py``)."""
  state_words: float                # DRAM words per example per free neuron per step.
  optimizer_words_per_param: float  # DRAM words per parameter per batch (training).
  optimizer_mults_per_param: float
  optimizer_adds_per_param: float
  neuron_mults_per_update: float
  neuron_adds_per_update: float


@dataclasses.dataclass(frozen=True)
class GpuScenario:
  """One way of running rate EP on a GPU."""
  name: str
  t_free: int
  t_nudge: int
  nudged_phases: int  # 1 (one-sided, random sign) or 2 (symmetric).
  batch: int          # Examples sharing each read of the weights and each optimizer step.
  dram: bool          # False: arithmetic only, a lower bound.


@dataclasses.dataclass(frozen=True)
class Energy:
  """An energy per example, split by term, in pJ."""
  terms: Tuple[Tuple[str, float], ...]

  @property
  def total(self) -> float:
    return float(sum(v for _, v in self.terms))

  def as_dict(self) -> dict:
    return {"terms_pj": {k: float(v) for k, v in self.terms}, "total_pj": self.total}


def _constant(cfg: ml_collections.ConfigDict, field: str, where: str) -> Constant:
  c = cfg[field]
  if not c.value >= 0:
    raise ValueError(f"{where}.{field}.value = {c.value}: an energy must be >= 0; set it with "
                     f"--energy.{where}.{field}.value=...")
  return Constant(float(c.value), str(c.unit), str(c.source))


def neuromorphic_profiles(cfg: ml_collections.ConfigDict) -> Dict[str, NeuromorphicProfile]:
  """The chip profiles named in ``cfg.neuromorphic_profiles``, by field name."""
  profiles = {}
  for key in cfg.neuromorphic_profiles:
    if key not in cfg:
      raise ValueError(f"neuromorphic_profiles names {key!r}, which the energy config does not "
                       f"define; known fields: {sorted(cfg.keys())}.")
    p = cfg[key]
    profiles[key] = NeuromorphicProfile(p.name, *(_constant(p, f, key) for f in
                                                  ("e_sop", "e_neuron", "e_update")))
  return profiles


def gpu_profile(cfg: ml_collections.ConfigDict) -> GpuProfile:
  g = cfg.gpu
  return GpuProfile(g.name, *(_constant(g, f, "gpu") for f in ("e_mult", "e_add", "e_dram")))


def gpu_model(cfg: ml_collections.ConfigDict) -> GpuModel:
  m = cfg.gpu_model
  return GpuModel(**{f.name: float(m[f.name]) for f in dataclasses.fields(GpuModel)})


# ================================================================================================
# Neuromorphic energy from event counts.
# ================================================================================================

REQUIRED_COUNTS = ("free/synaptic_ops", "free/neuron_updates", "nudged/synaptic_ops",
                   "nudged/neuron_updates", "nudged/synaptic_updates")


def _require(counts: Mapping[str, float], keys: Sequence[str]) -> None:
  missing = [k for k in keys if k not in counts]
  if missing:
    raise KeyError(f"event counts lack {missing} (have {sorted(counts)}): pass the per-example "
                   f"counts of eqspike._metrics without the 'events/' prefix.")


def neuromorphic_inference(counts: Mapping[str, float], chip: NeuromorphicProfile) -> Energy:
  """The free phase: its synaptic operations and neuron updates."""
  _require(counts, REQUIRED_COUNTS[:2])
  return Energy((
      ("free/synaptic_ops", counts["free/synaptic_ops"] * chip.e_sop.value),
      ("free/neuron_updates", counts["free/neuron_updates"] * chip.e_neuron.value)))


def neuromorphic_training(counts: Mapping[str, float], chip: NeuromorphicProfile) -> Energy:
  """Free and nudged phases, and every weight the rule writes.

  ``free/synaptic_updates`` (one-sided runs with a free-phase contrast, whose statistic is
  gathered, and written, during the free phase's tail) counts when present.
  """
  _require(counts, REQUIRED_COUNTS)
  updates = counts["nudged/synaptic_updates"] + counts.get("free/synaptic_updates", 0.0)
  return Energy(neuromorphic_inference(counts, chip).terms + (
      ("nudged/synaptic_ops", counts["nudged/synaptic_ops"] * chip.e_sop.value),
      ("nudged/neuron_updates", counts["nudged/neuron_updates"] * chip.e_neuron.value),
      ("synaptic_updates", updates * chip.e_update.value)))


# ================================================================================================
# GPU: the same network, rate-based. Operation and DRAM counts per example, then energy.
# ================================================================================================


def _rate_ep_config(sizes: Sequence[int], scenario: GpuScenario) -> ml_collections.ConfigDict:
  """The rate-EP config whose training step ``flops.ep_step_flops`` counts."""
  if scenario.nudged_phases not in (1, 2):
    raise ValueError(f"scenario {scenario.name!r}: nudged_phases = {scenario.nudged_phases}; "
                     f"must be 1 (one-sided) or 2 (symmetric).")
  return ml_collections.ConfigDict({
      "model": "rate_ep", "layer_sizes": tuple(sizes), "batch_size": 1,
      "t_free": scenario.t_free, "t_nudge": scenario.t_nudge, "update_mode": "accumulated",
      "nudging": "symmetric" if scenario.nudged_phases == 2 else "one_sided"})


def _macs(sizes: Sequence[int], scenario: GpuScenario, training: bool) -> Dict[str, float]:
  """MACs per example: flops.py's analytic count of rate EP, halved (a MAC is two FLOPs)."""
  if training:
    f = flops.ep_step_flops(_rate_ep_config(sizes, scenario))
    return {f"macs/{c}": f[c] / 2 for c in flops.CATEGORIES}
  # Inference is the training step's input drive and free phase: x @ W0 once (the input is
  # constant), then each step's forward and feedback products, as flops counts them.
  free = flops.dynamics_matmuls(sizes, 1, scenario.t_free, "free")
  return {"macs/input_drive": float(sizes[0] * sizes[1]),
          "macs/dynamics": sum(mm.flops for mm in free) / 2}


def gpu_counts(sizes: Sequence[int], scenario: GpuScenario, model: GpuModel,
               training: bool) -> Dict[str, float]:
  """Operations and DRAM words per example of rate EP on ``sizes`` under ``scenario``.

  With ``n0`` inputs, ``n1`` first free units, ``F`` free units in all, ``W0 = n0 n1``, ``W+``
  the weights of the other layers, ``P`` all parameters and ``T`` the time steps (``t_free``, or
  ``t_free + nudged_phases t_nudge`` for training), on a batch of ``B``:

  * ``macs/...``: input drive, dynamics and (training) the EP update's outer products;
  * ``mults|adds/neurons``: the elementwise work of ``T F`` neuron updates;
  * ``mults|adds/optimizer`` (training): the optimizer's per-parameter work, ``P / B``;
  * DRAM (one kernel per step, as a PyTorch EP loop runs; nothing stays on chip between steps):
    ``dram/weights`` = ``(W0 + T (W+ + F)) / B``: W0 read once for the drive, the other weights
    and the biases once per step, shared by the batch; ``dram/input`` = ``n0`` (and ``n0`` more
    for the W0 update in training); ``dram/states`` = ``T (state_words F + n1) + n1``: each step
    reads and writes every state and reads the stored drive, written once (training: ``+ 2 F``,
    the two states of the contrast read by the update); ``dram/optimizer`` =
    ``optimizer_words_per_param P / B``.
  """
  sizes = tuple(sizes)
  if len(sizes) < 2:
    raise ValueError(f"layer sizes {sizes}: need an input and an output layer.")
  if scenario.batch < 1:
    raise ValueError(f"scenario {scenario.name!r}: batch = {scenario.batch}; must be >= 1.")
  n0, n1, free = sizes[0], sizes[1], sum(sizes[1:])
  w0 = n0 * n1
  w_rest = sum(a * b for a, b in zip(sizes[1:-1], sizes[2:]))
  params = w0 + w_rest + free  # One bias per free unit.
  steps = scenario.t_free + (scenario.nudged_phases * scenario.t_nudge if training else 0)
  batch = scenario.batch

  counts = _macs(sizes, scenario, training)
  counts["mults/neurons"] = model.neuron_mults_per_update * steps * free
  counts["adds/neurons"] = model.neuron_adds_per_update * steps * free
  if training:
    counts["mults/optimizer"] = model.optimizer_mults_per_param * params / batch
    counts["adds/optimizer"] = model.optimizer_adds_per_param * params / batch
  if scenario.dram:
    counts["dram/weights"] = (w0 + steps * (w_rest + free)) / batch
    counts["dram/input"] = float(n0 * (2 if training else 1))
    counts["dram/states"] = (steps * (model.state_words * free + n1) + n1
                             + (2 * free if training else 0))
    if training:
      counts["dram/optimizer"] = model.optimizer_words_per_param * params / batch
  return {k: float(v) for k, v in counts.items()}


def gpu_energy(counts: Mapping[str, float], gpu: GpuProfile) -> Energy:
  """Prices ``gpu_counts``: a MAC is one multiply and one add, a DRAM word ``e_dram``."""
  price = {"macs": gpu.e_mult.value + gpu.e_add.value, "mults": gpu.e_mult.value,
           "adds": gpu.e_add.value, "dram": gpu.e_dram.value}
  terms = []
  for key, n in counts.items():
    kind = key.split("/")[0]
    if kind not in price:
      raise KeyError(f"GPU count {key!r}: its kind {kind!r} has no price (known: {sorted(price)}).")
    terms.append((key, n * price[kind]))
  return Energy(tuple(terms))


def measured_energy(power_w: float, samples_per_s: float) -> Optional[float]:
  """pJ per example from a measured power and throughput; None unless both are given (> 0)."""
  if power_w < 0 or samples_per_s < 0:
    raise ValueError(f"measured GPU power {power_w} W and throughput {samples_per_s} samples/s "
                     f"must be >= 0 (0 = not measured).")
  if power_w == 0 or samples_per_s == 0:
    return None
  return power_w / samples_per_s * PJ_PER_J


def gpu_scenarios(cfg: ml_collections.ConfigDict, run: ml_collections.ConfigDict
                  ) -> List[GpuScenario]:
  """(a) compute only, (b) batch 1 with DRAM, (c) the training batch with DRAM, each at the rate
  EP reference's time steps and at the EqSpike run's own (like for like)."""
  m = cfg.gpu_model
  batch = m.batch_size or run.batch_size
  steps = (("rate_ep_steps", m.reference_t_free, m.reference_t_nudge, m.reference_nudged_phases),
           ("eqspike_steps", run.t_free, run.t_nudge, 2 if run.nudging == "symmetric" else 1))
  memory = (("compute_only", batch, False), ("batch1_dram", 1, True),
            (f"batch{batch}_dram", batch, True))
  return [GpuScenario(f"{s}/{name}", t_free, t_nudge, phases, b, dram)
          for s, t_free, t_nudge, phases in steps for name, b, dram in memory]


# ================================================================================================
# Event counts of a trained network.
# ================================================================================================


@dataclasses.dataclass(frozen=True)
class EventCounts:
  """Per-example event counts (keys of ``eqspike._metrics`` without ``events/``)."""
  inference: Mapping[str, float]  # The free phase alone (``free/...``).
  training: Mapping[str, float]   # Every phase of one training step.
  source: str                     # Where they come from, for the report.


def _weighted_mean(dicts: Sequence[Mapping[str, float]], weights: Sequence[int]
                   ) -> Dict[str, float]:
  total = float(sum(weights))
  return {k: float(sum(w * float(d[k]) for d, w in zip(dicts, weights)) / total)
          for k in dicts[0]}


def measure_events(params, run: ml_collections.ConfigDict, images: np.ndarray,
                   labels: np.ndarray, batch_size: int = 100, seed: int = 0,
                   source: str = "") -> EventCounts:
  """Event counts per example of ``params`` on ``images``, averaged over every example.

  Training: one ``eqspike.eqspike_gradient`` step at these (fixed) weights, its ``events/...``
  metrics; inference: the free phase's part of them (``inference_counts``). An
  ``online`` run moves its weights during the nudged phase, which changes its counts only to
  first order in the learning rate.
  """
  if len(images) == 0:
    raise ValueError("measure_events got no examples; raise num_examples.")
  if len(images) != len(labels):
    raise ValueError(f"{len(images)} images but {len(labels)} labels.")
  dyn = eqspike.dynamics_from_config(run)
  num_classes = run.layer_sizes[-1]

  @jax.jit
  def batch_events(params, x, label, key):
    y = jax.nn.one_hot(label, num_classes, dtype=x.dtype)
    _, metrics = eqspike.eqspike_gradient(
        params, x, y, key, dyn=dyn, beta=run.beta, nudging=run.nudging,
        free_contrast=run.free_contrast, debias=run.debias)
    return {k[len("events/"):]: v for k, v in metrics.items() if k.startswith("events/")}

  key = jax.random.PRNGKey(seed)
  training, sizes = [], []
  for i, start in enumerate(range(0, len(images), batch_size)):
    # phase_events averages over its batch; the last, smaller batch is weighted by its size.
    x = jnp.asarray(images[start:start + batch_size])
    label = jnp.asarray(labels[start:start + batch_size])
    training.append(jax.device_get(batch_events(params, x, label, jax.random.fold_in(key, i))))
    sizes.append(len(x))
  training = _weighted_mean(training, sizes)
  return EventCounts(inference_counts(training), training,
                     source or f"measured on {len(images)} examples")


def inference_counts(training: Mapping[str, float]) -> Dict[str, float]:
  """The events of an inference: those of a training step's free phase.

  Prediction runs exactly that free phase (``eqspike.predict``: same dynamics, same number of
  steps), so its counts need no second run. A free-phase contrast's weight writes (one-sided
  runs) belong to training only.
  """
  return {k: v for k, v in training.items()
          if k.startswith("free/") and k != "free/synaptic_updates"}


def counts_from_summary(workdir: str) -> EventCounts:
  """The training-time counts of a run's last epoch (``summary.json``), on training data."""
  path = os.path.join(workdir, "summary.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist: let the run finish (or write it with "
                            f"python -m launch.summary), or measure the counts instead "
                            f"(--energy.counts=measured).")
  with open(path) as f:
    events = json.load(f).get("events_per_example_last_epoch") or {}
  if not events:
    raise ValueError(f"{path} holds no events_per_example_last_epoch (not an EqSpike run, or "
                     f"one from before event counting): use --energy.counts=measured.")
  return EventCounts(inference_counts(events), dict(events),
                     f"{path}: events_per_example_last_epoch (training data, last epoch)")


# ================================================================================================
# The report: a JSON-serialisable dict, and a plain-text table of it.
# ================================================================================================


def _constants(cfg: ml_collections.ConfigDict) -> Dict[str, dict]:
  out = {}
  for key, chip in neuromorphic_profiles(cfg).items():
    for field in ("e_sop", "e_neuron", "e_update"):
      out[f"{key}.{field}"] = dataclasses.asdict(getattr(chip, field))
  gpu = gpu_profile(cfg)
  for field in ("e_mult", "e_add", "e_dram"):
    out[f"gpu.{field}"] = dataclasses.asdict(getattr(gpu, field))
  return out


def _ratio(gpu_pj: Optional[float], chip_pj: float) -> Optional[float]:
  if gpu_pj is None or chip_pj <= 0:
    return None
  return gpu_pj / chip_pj


def build_report(counts: EventCounts, run: ml_collections.ConfigDict,
                 cfg: ml_collections.ConfigDict) -> dict:
  """Constants, counts, energies per example (pJ) and GPU / chip ratios, as plain JSON types."""
  sizes = tuple(run.layer_sizes)
  chips = neuromorphic_profiles(cfg)
  gpu, model = gpu_profile(cfg), gpu_model(cfg)

  neuromorphic = {}
  for key, chip in chips.items():
    neuromorphic[key] = {"name": chip.name,
                         "inference": neuromorphic_inference(counts.inference, chip).as_dict(),
                         "training": neuromorphic_training(counts.training, chip).as_dict()}

  gpu_out = {}
  for s in gpu_scenarios(cfg, run):
    entry = {"settings": dataclasses.asdict(s)}
    for phase in ("inference", "training"):
      c = gpu_counts(sizes, s, model, training=phase == "training")
      entry[phase] = {"counts": c, **gpu_energy(c, gpu).as_dict()}
    gpu_out[s.name] = entry
  measured = cfg.gpu_measured
  inf_pj = measured_energy(measured.power_w, measured.inference_samples_per_s)
  train_pj = measured_energy(measured.power_w, measured.train_samples_per_s)
  if inf_pj is not None or train_pj is not None:
    gpu_out["measured"] = {
        "settings": {"power_w": measured.power_w, "source": measured.source,
                     "inference_samples_per_s": measured.inference_samples_per_s,
                     "train_samples_per_s": measured.train_samples_per_s},
        "inference": None if inf_pj is None else {"total_pj": inf_pj},
        "training": None if train_pj is None else {"total_pj": train_pj}}

  ratios = {}
  for name, entry in gpu_out.items():
    ratios[name] = {}
    for key in chips:
      ratios[name][key] = {
          phase: _ratio(entry[phase] and entry[phase]["total_pj"],
                        neuromorphic[key][phase]["total_pj"])
          for phase in ("inference", "training")}

  return {
      "network": {"model": run.model, "layer_sizes": list(sizes), "t_free": run.t_free,
                  "t_nudge": run.t_nudge, "nudging": run.nudging, "batch_size": run.batch_size,
                  "input_mode": run.input_mode},
      "constants": _constants(cfg),
      "gpu_model": {**dataclasses.asdict(model), "doc": inspect.cleandoc(gpu_counts.__doc__)},
      "counts": {"source": counts.source, "inference": dict(counts.inference),
                 "training": dict(counts.training)},
      "neuromorphic": neuromorphic,
      "gpu": gpu_out,
      "ratios": ratios,
      "paper": {"inference_ratio": cfg.paper.inference_ratio,
                "training_ratio": cfg.paper.training_ratio, "source": cfg.paper.source},
  }


def _uj(pj: Optional[float]) -> str:
  return "-" if pj is None else f"{pj / PJ_PER_UJ:.4g}"


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


def format_table(report: dict) -> str:
  """The report as plain text: constants, counts, energies (uJ per example) and ratios."""
  net = report["network"]
  lines = [f"Energy per example: {'-'.join(map(str, net['layer_sizes']))}, t_free "
           f"{net['t_free']}, t_nudge {net['t_nudge']}, {net['nudging']} nudging, input "
           f"{net['input_mode']}" + _run_line(report.get("run")), "", "Constants"]
  for name, c in report["constants"].items():
    lines.append(f"  {name:<16} {c['value']:>8g} {c['unit']:<3} {c['source']}")

  counts = report["counts"]
  lines += ["", f"Event counts per example ({counts['source']})",
            f"  {'':<22} {'inference':>12} {'training':>12}"]
  for key in sorted(set(counts["inference"]) | set(counts["training"])):
    inf = counts["inference"].get(key)
    lines.append(f"  {key:<22} {'-' if inf is None else f'{inf:.0f}':>12} "
                 f"{counts['training'].get(key, float('nan')):>12.0f}")

  lines += ["", "Neuromorphic, uJ per example", f"  {'chip':<16} {'inference':>10} "
            f"{'training':>10}  largest training term"]
  for key, e in report["neuromorphic"].items():
    terms = e["training"]["terms_pj"]
    top = max(terms, key=terms.get)
    lines.append(f"  {key:<16} {_uj(e['inference']['total_pj']):>10} "
                 f"{_uj(e['training']['total_pj']):>10}  {top} "
                 f"{100 * terms[top] / e['training']['total_pj']:.0f}%")

  lines += ["", "GPU (rate EP, same layer sizes), uJ per example",
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

  paper = report["paper"]
  lines += ["", f"Ratio GPU / neuromorphic (paper: ~{paper['inference_ratio']:.0e} inference, "
            f"~{paper['training_ratio']:.0e} training; {paper['source'].split(' (')[0]})"]
  chips = list(report["neuromorphic"])
  lines.append(f"  {'scenario':<34} " + " ".join(f"{c + ' inf':>10} {c + ' train':>11}"
                                                  for c in chips))
  for name, by_chip in report["ratios"].items():
    lines.append(f"  {name:<34} " + " ".join(
        f"{_x(by_chip[c]['inference']):>10} {_x(by_chip[c]['training']):>11}" for c in chips))
  return "\n".join(lines)


# ================================================================================================
# A trained run, end to end.
# ================================================================================================


def report_for_workdir(workdir: str, cfg: ml_collections.ConfigDict) -> dict:
  """Loads the EqSpike run in ``workdir``, counts its events and builds the report."""
  # The trainer brings orbax and TensorBoard, which the arithmetic above does not need.
  from eqspike_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from eqspike_jax import train  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f"workdir {workdir!r} does not exist: train a run with python -m "
                            f"launch.train --config configs/mnist_eqspike.py --workdir {workdir}.")
  run = train.load_config_json(workdir)
  if run.model != "eqspike":
    raise ValueError(f"{workdir} holds a {run.model!r} run: the energy model needs the event "
                     f"counts of a spiking network, so point --workdir at an 'eqspike' run (the "
                     f"GPU side of the report already prices rate EP of the same layer sizes).")
  step = None
  if cfg.counts == "measured":
    run, params, step = train.load_trained(workdir)
    split = data_lib.load_split(run.dataset, cfg.split, run.data_dir or None, run.download,
                                size=cfg.num_examples)
    counts = measure_events(params, run, split.images, split.labels, cfg.batch_size, cfg.seed,
                            f"measured on {len(split.labels)} {run.dataset} {cfg.split} "
                            f"examples")
  elif cfg.counts == "summary":
    counts = counts_from_summary(workdir)
  else:
    raise ValueError(f"counts = {cfg.counts!r}: must be 'measured' or 'summary'.")
  report = build_report(counts, run, cfg)
  report["run"] = {"workdir": workdir, "config_name": run.get("name", ""), "step": step,
                   "trained_at_git_sha": train.load_run_info(workdir)["git_sha"],
                   "measured_at_git_sha": train.git_sha()}
  return report


def write_report(report: dict, paths: Sequence[str]) -> None:
  for path in paths:
    if os.path.dirname(path):
      os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      json.dump(report, f, indent=2)
