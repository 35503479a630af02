r"""The energy model's constants and scenarios (EQSPIKE.md section 4; eqspike_jax.analysis.energy).

Command (the trained default EqSpike network, 1,000 test examples, about a minute on 2 cores):

  python -m launch.energy --workdir runs/mnist_eqspike --output results/energy_mnist_eqspike.json

Every constant is ``(value, unit, source)`` and overridable from the command line, e.g.
``--energy.loihi.e_sop.value=30`` or ``--energy.gpu_model.batch_size=256``. Energies are in pJ.
"""

import ml_collections


def constant(value: float, unit: str, source: str) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({"value": value, "unit": unit, "source": source})


_LOIHI = "Davies et al. 2018, IEEE Micro 38(1), Loihi, 14 nm"
_ODIN = "Frenkel et al. 2019, IEEE TBioCAS 13(1), ODIN, 28 nm FDSOI"
_HOROWITZ = "Horowitz 2014 ISSCC, 45 nm, as tabulated by Han et al. 2015"


def get_config():
  c = ml_collections.ConfigDict()

  # ------------------------------------------------------------ event counts
  c.counts = "measured"     # "measured": run the trained network on data; "summary": read the
  #                           run's summary.json (training-time counts of its last epoch).
  c.split = "test"
  c.num_examples = 1000     # First N examples of the split; 0 = the whole split.
  c.batch_size = 100        # Measurement batch (speed only: counts are per example).
  c.seed = 0                # Key of the measurement (stochastic spikes, random beta sign).

  # ------------------------------------------------------------ neuromorphic chips
  c.neuromorphic_profiles = ("loihi", "odin")  # The fields below that are chip profiles.
  c.loihi = ml_collections.ConfigDict()
  c.loihi.name = "Loihi (14 nm)"
  c.loihi.e_sop = constant(23.6, "pJ", f"{_LOIHI}: synaptic spike operation")
  # Every neuron update is counted as active (the published inactive figure is lower).
  c.loihi.e_neuron = constant(52.0, "pJ", f"{_LOIHI}: neuron update (active)")
  c.loihi.e_update = constant(120.0, "pJ", f"{_LOIHI}: synaptic update")
  c.odin = ml_collections.ConfigDict()
  c.odin.name = "ODIN (28 nm)"
  c.odin.e_sop = constant(12.7, "pJ", f"{_ODIN}: energy per synaptic operation (SOP)")
  c.odin.e_neuron = constant(52.0, "pJ", f"not published for ODIN; Loihi's figure ({_LOIHI})")
  c.odin.e_update = constant(120.0, "pJ", f"not published for ODIN; Loihi's figure ({_LOIHI})")

  # ------------------------------------------------------------ GPU: per-operation energies
  c.gpu = ml_collections.ConfigDict()
  c.gpu.name = "GPU, float32 (45 nm)"
  c.gpu.e_mult = constant(3.7, "pJ", f"{_HOROWITZ}: 32-bit float multiply")
  c.gpu.e_add = constant(0.9, "pJ", f"{_HOROWITZ}: 32-bit float add")
  c.gpu.e_dram = constant(640.0, "pJ", f"{_HOROWITZ}: 32-bit DRAM access (per word)")

  # ------------------------------------------------------------ GPU: the rate-EP workload
  m = c.gpu_model = ml_collections.ConfigDict()
  # The rate EP reference of this project (configs/mnist_rate_ep.py). The report also prices
  # the EqSpike run's own t_free / t_nudge / nudging (like-for-like time steps).
  m.reference_t_free = 30
  m.reference_t_nudge = 10
  m.reference_nudged_phases = 1  # One-sided nudging; 2 for symmetric.
  m.batch_size = 0               # Scenarios (a) and (c); 0 = the EqSpike run's batch size.
  # DRAM words per example per free neuron per time step: its state read and written once.
  m.state_words = 2.0
  # Adam reads and writes, once per batch, each parameter, its gradient and its two moments.
  m.optimizer_words_per_param = 8.0
  # Adam as optax computes it, per parameter per batch (sqrt and divide counted as one
  # multiply each): 2 moment updates (5 mults, 2 adds), 2 bias corrections (2), the step
  # m / (sqrt(v) + eps) (3 mults, 1 add), the learning rate (1) and the parameter update (1 add).
  m.optimizer_mults_per_param = 10.0
  m.optimizer_adds_per_param = 4.0
  # One neuron update of rate EP besides its matmuls: drive + feedback + bias (2 adds), then
  # sigmoid(4 (v - 1/2)) (a subtract, a multiply, exp, an add and a reciprocal; exp and the
  # reciprocal counted as one multiply each, so this is a lower bound).
  m.neuron_mults_per_update = 3.0
  m.neuron_adds_per_update = 4.0

  # ------------------------------------------------------------ GPU: a published measurement
  # Blouw, Choo, Hunsberger, Eliasmith 2018 (arXiv 1812.01739; logs in abr/power_benchmarks):
  # an MLP 390-256-256-29 on a Quadro K4000, board power from nvidia-smi every 200 ms over a
  # 15-minute loop, dynamic energy = (running - idle power) / throughput. The figures are those
  # quoted in this project's issue 11 from that paper; they were not re-read here.
  p = c.gpu_published = ml_collections.ConfigDict()
  p.name = "Quadro K4000, measured (Blouw et al. 2018)"
  p.source = ("Blouw et al. 2018, arXiv 1812.01739, MLP 390-256-256-29, Quadro K4000, "
              "nvidia-smi at 5 Hz, (running - idle) power / throughput")
  p.network_macs = 172.8e3         # 390*256 + 256*256 + 256*29 = 172,800 MACs per inference.
  p.batches = (1, 8, 64)
  p.dynamic_mj_per_inference = (29.8, 3.6, 0.73)
  p.running_w_batch1 = 37.8
  p.idle_w_batch1 = 15.0

  # ------------------------------------------------------------ GPU: measured (optional)
  # Energy per example = power / throughput, used only when both numbers are > 0 (0 = not
  # measured). E.g. nvidia-smi's board power while python -m launch.train runs.
  c.gpu_measured = ml_collections.ConfigDict()
  c.gpu_measured.power_w = 0.0
  c.gpu_measured.inference_samples_per_s = 0.0
  c.gpu_measured.train_samples_per_s = 0.0
  c.gpu_measured.source = ""     # Which GPU, which command, how the power was read.
  # Or the JSON of benchmarks/gpu_energy.py (e.g. results/gpu_energy.json): one scenario per
  # batch size measured, priced at its dynamic energy ((power - idle) / throughput).
  c.gpu_measured.file = ""

  # ------------------------------------------------------------ the claim to compare with
  c.paper = ml_collections.ConfigDict()
  c.paper.inference_ratio = 1e3
  c.paper.training_ratio = 1e2
  c.paper.source = ("Martin et al. 2021, iScience 24(3):102222 (abstract): GPU / neuromorphic "
                    "energy, about 10^3 for inference and 10^2 for training")
  return c
