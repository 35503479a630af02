"""Energy per example of EqSpike on neuromorphic chips against rate EP on a GPU (EQSPIKE.md 4).

Neuromorphic chips pay per event, so their energy comes from the event counts of the trained
spiking network (``events.StepEvents``, measured by ``energy_report``)::

  inference = N_sop(free) e_sop + N_neuron(free) e_neuron
  training  = inference + N_sop(nudged) e_sop + N_neuron(nudged) e_neuron + N_syn_update e_update

A GPU pays per arithmetic operation and per memory word. It would run the SAME network (layer
sizes) rate-based (``models.rate_ep``): the multiply-accumulates (MACs) are ``flops.py``'s
analytic count, and the DRAM traffic follows an explicit model (``gpu_counts``). Energy =
``MACs (e_mult + e_add) + elementwise mults e_mult + adds e_add + DRAM words e_dram``. A
measured figure, power / throughput, is used when one is given.

Every constant is a ``Constant`` with its unit and source (``configs/energy.py``); energies are in
pJ per example throughout, the table prints uJ. This module is arithmetic only: it runs no network.
"""

import dataclasses
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import ml_collections

from eqspike_jax import config_lib
from eqspike_jax import ep_core
from eqspike_jax import events
from eqspike_jax import flops
from eqspike_jax import layers

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


def neuromorphic_inference(free: events.PhaseEvents, chip: NeuromorphicProfile) -> Energy:
  """The free phase: its synaptic operations and neuron updates (its weight writes, if it has
  any, belong to training)."""
  return Energy((
      ("free/synaptic_ops", float(free.synaptic_ops) * chip.e_sop.value),
      ("free/neuron_updates", float(free.neuron_updates) * chip.e_neuron.value)))


def neuromorphic_training(step: events.StepEvents, chip: NeuromorphicProfile) -> Energy:
  """Free and nudged phases, and every weight the rule writes.

  The free phase's writes count too: one-sided runs with a free-phase contrast gather (and
  write) its statistic during the free phase's tail; other runs write 0 there.
  """
  updates = float(step.nudged.synaptic_updates) + float(step.free.synaptic_updates)
  return Energy(neuromorphic_inference(step.free, chip).terms + (
      ("nudged/synaptic_ops", float(step.nudged.synaptic_ops) * chip.e_sop.value),
      ("nudged/neuron_updates", float(step.nudged.neuron_updates) * chip.e_neuron.value),
      ("synaptic_updates", updates * chip.e_update.value)))


# ================================================================================================
# GPU: the same network, rate-based. Operation and DRAM counts per example, then energy.
# ================================================================================================


def _rate_ep_config(sizes: Sequence[int], scenario: GpuScenario) -> ml_collections.ConfigDict:
  """The rate-EP config whose training step ``flops.ep_step_flops`` counts (batch of 1)."""
  if scenario.nudged_phases not in (1, 2):
    raise ValueError(f"scenario {scenario.name!r}: nudged_phases = {scenario.nudged_phases}; "
                     f"must be 1 (one-sided) or 2 (symmetric).")
  # Every field of a real rate-EP config (flops may read any of them), then the scenario's.
  c = config_lib.base_config("rate_ep")
  c.layer_sizes, c.batch_size = tuple(sizes), 1
  c.learning_rates = (c.learning_rates[0],) * (len(c.layer_sizes) - 1)
  c.t_free, c.t_nudge, c.update_mode = scenario.t_free, scenario.t_nudge, "accumulated"
  c.nudging = "symmetric" if scenario.nudged_phases == 2 else "one_sided"
  return c


def _macs(sizes: Sequence[int], scenario: GpuScenario, training: bool) -> Dict[str, float]:
  """MACs per example: flops.py's analytic count of rate EP, halved (a MAC is two FLOPs)."""
  if training:
    f = flops.ep_step_flops(_rate_ep_config(sizes, scenario))
    return {f"macs/{c}": f[c] / 2 for c in flops.CATEGORIES}
  # Inference is the training step's input drive and free phase: x @ W0 once (the input is
  # constant), then each step's forward and feedback products, as flops counts them.
  arch = layers.dense_stack(sizes)
  free = flops.dynamics_matmuls(arch, 1, scenario.t_free, "free")
  return {"macs/input_drive": float(arch[0].num_synapses),
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
  run_phases = ep_core.Nudging(run.nudging, run.beta).num_phases
  steps = (("rate_ep_steps", m.reference_t_free, m.reference_t_nudge, m.reference_nudged_phases),
           ("eqspike_steps", run.t_free, run.t_nudge, run_phases))
  memory = (("compute_only", batch, False), ("batch1_dram", 1, True),
            (f"batch{batch}_dram", batch, True))
  return [GpuScenario(f"{s}/{name}", t_free, t_nudge, phases, b, dram)
          for s, t_free, t_nudge, phases in steps for name, b, dram in memory]


@dataclasses.dataclass(frozen=True)
class PublishedGpu:
  """A published GPU measurement of a small network: dynamic energy per inference by batch."""
  name: str
  source: str
  network_macs: float
  batches: Tuple[int, ...]
  dynamic_mj_per_inference: Tuple[float, ...]

  def pj_per_mac(self, i: int) -> float:
    return self.dynamic_mj_per_inference[i] * 1e9 / self.network_macs


def published_gpu(cfg: ml_collections.ConfigDict) -> PublishedGpu:
  p = cfg.gpu_published
  if len(p.batches) != len(p.dynamic_mj_per_inference):
    raise ValueError(f"energy config gpu_published: {len(p.batches)} batches for "
                     f"{len(p.dynamic_mj_per_inference)} energies; give one energy per batch.")
  if p.network_macs <= 0 or min(p.dynamic_mj_per_inference) <= 0:
    raise ValueError("energy config gpu_published: network_macs and every energy must be > 0.")
  return PublishedGpu(p.name, p.source, float(p.network_macs), tuple(p.batches),
                      tuple(float(e) for e in p.dynamic_mj_per_inference))


def published_gpu_entries(sizes: Sequence[int], cfg: ml_collections.ConfigDict,
                          model: GpuModel) -> Dict[str, dict]:
  """The published measurement scaled to rate EP on ``sizes``, by two stated models.

  * ``per_mac``: the measured dynamic energy per MAC at that batch times rate EP's MACs per
    example (``gpu_counts``' ``macs/...`` at the rate-EP reference's time steps). At batch 1 a
    GPU running a small network is bound by kernel launches and framework overhead, not by
    arithmetic, so charging that overhead per MAC to a network with more MACs overstates the
    GPU's energy: an upper estimate.
  * ``per_inference``: the measured energy of one inference of the MLP, charged to one rate-EP
    inference whatever its MACs (inference only): a lower estimate, since rate EP's inference
    does 4x the MLP's MACs and runs ``t_free`` dependent steps where the MLP runs 3 layers.
  """
  pub = published_gpu(cfg)
  m = cfg.gpu_model
  out = {}
  for i, batch in enumerate(pub.batches):
    scenario = GpuScenario(f"published/batch{batch}", m.reference_t_free, m.reference_t_nudge,
                           m.reference_nudged_phases, batch, False)
    macs = {phase: sum(v for k, v in gpu_counts(sizes, scenario, model, phase == "training")
                       .items() if k.startswith("macs/"))
            for phase in ("inference", "training")}
    per_mac = pub.pj_per_mac(i)
    settings = {"source": pub.source, "batch": batch, "pj_per_mac": per_mac,
                "measured_mj_per_inference": pub.dynamic_mj_per_inference[i]}
    out[f"published_per_mac/batch{batch}"] = {
        "settings": {**settings, "model": "per_mac", "macs": macs},
        **{phase: {"total_pj": per_mac * macs[phase]} for phase in macs}}
    out[f"published_per_inference/batch{batch}"] = {
        "settings": {**settings, "model": "per_inference"},
        "inference": {"total_pj": pub.dynamic_mj_per_inference[i] * 1e9}, "training": None}
  return out
