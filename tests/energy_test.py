"""The energy model: arithmetic by hand, event counts of a hand-built network, the report, and the
launcher end to end on a tiny trained run (analysis/energy.py, analysis/energy_report.py)."""

import json
import os
import sys

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqspike_jax import config_lib
from eqspike_jax import events
from eqspike_jax import metrics as metrics_lib
from eqspike_jax import train
from eqspike_jax.analysis import energy
from eqspike_jax.analysis import energy_report
from eqspike_jax.analysis import reports
from eqspike_jax.models import eqspike
from eqspike_jax.network import Layer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(name="cfg")
def energy_config(load_config):
  return load_config("energy")


def tiny_run(nudging="symmetric", batch_size=2):
  """A 2-2-1 EqSpike network, gamma 1, T_free 4, T_nudge 2 (the run whose counts follow)."""
  c = config_lib.base_config("eqspike")
  c.layer_sizes, c.learning_rates = (2, 2, 1), (1e-3, 1e-3)
  c.t_free, c.t_nudge, c.beta = 4, 2, 0.5
  c.eqspike.gamma, c.eqspike.pairing = 1.0, "same_step"
  c.nudging, c.batch_size = nudging, batch_size
  config_lib.validate(c)
  return c


def phase_counts(spikes, sops, neuron_updates, synaptic_updates):
  return events.PhaseEvents(spikes=tuple(spikes), synaptic_ops=sops,
                            neuron_updates=neuron_updates, synaptic_updates=synaptic_updates)


def flat(tree):
  """Typed counts by name, as floats: what the comparisons below compare."""
  return {k: float(v) for k, v in metrics_lib.flatten(tree).items()}


# Per example, symmetric nudging, input x = [1, 0.5] (made-up but consistent counts to price):
# free: 6 input spikes x fan-out 2 + 3 hidden spikes x fan-out 1 = 15 SOPs, 4 steps x 3 neurons,
# no weight writes; each of the two nudged phases: 3 input spikes x 2 + 2 hidden x 1 = 8 SOPs,
# 2 x 3 neuron updates, 3 x 2 writes of W0 + 2 x 1 writes of W1 = 8 synaptic updates.
TINY_COUNTS = events.StepEvents(free=phase_counts((6.0, 3.0, 0.0), 15.0, 12.0, 0.0),
                                nudged=phase_counts((6.0, 4.0, 0.0), 16.0, 12.0, 16.0))


# ================================================================================================
# (a) Arithmetic by hand.
# ================================================================================================


def test_neuromorphic_energy_by_hand(cfg):
  chips = energy.neuromorphic_profiles(cfg)
  loihi_inf = energy.neuromorphic_inference(TINY_COUNTS.free, chips["loihi"])
  assert loihi_inf.total == pytest.approx(15 * 23.6 + 12 * 52)
  loihi = energy.neuromorphic_training(TINY_COUNTS, chips["loihi"])
  assert loihi.total == pytest.approx(15 * 23.6 + 12 * 52 + 16 * 23.6 + 12 * 52 + 16 * 120)
  assert dict(loihi.terms)["synaptic_updates"] == pytest.approx(16 * 120)
  odin = energy.neuromorphic_training(TINY_COUNTS, chips["odin"])
  assert energy.neuromorphic_inference(TINY_COUNTS.free, chips["odin"]).total == pytest.approx(
      15 * 12.7 + 12 * 52)
  assert odin.total == pytest.approx(15 * 12.7 + 12 * 52 + 16 * 12.7 + 12 * 52 + 16 * 120)
  # A one-sided run with a free contrast also writes weights in the free phase's tail.
  one_sided = TINY_COUNTS.replace(free=TINY_COUNTS.free.replace(synaptic_updates=5.0))
  assert energy.neuromorphic_training(one_sided, chips["loihi"]).total == pytest.approx(
      loihi.total + 5 * 120)
  # Inference never pays for them.
  assert energy.neuromorphic_inference(one_sided.free, chips["loihi"]).total == pytest.approx(
      loihi_inf.total)


def tiny_scenario(nudged_phases=1, batch=2, dram=True):
  return energy.GpuScenario("tiny", t_free=4, t_nudge=2, nudged_phases=nudged_phases,
                            batch=batch, dram=dram)


def test_gpu_counts_by_hand(cfg):
  """Network 3-2-1 (W0 3x2, W1 2x1, 3 biases: 11 parameters, 3 free units), T 4 + 2, B 2.

  MACs: drive x@W0 3*2 = 6 once; per step W1 forward 2*1 and W1^T feedback 1*2 = 4; update:
  x^T d for W0 3*2 = 6 and two outer products for W1 2*2*1 = 4. Neuron updates: 3 per step.
  """
  model = energy.gpu_model(cfg)
  inference = energy.gpu_counts((3, 2, 1), tiny_scenario(), model, training=False)
  assert inference == {
      "macs/input_drive": 6, "macs/dynamics": 4 * 4,
      "mults/neurons": 3 * 4 * 3, "adds/neurons": 4 * 4 * 3,
      "dram/weights": (6 + 4 * (2 + 3)) / 2,  # W0 once, W1 and the biases per step; / batch.
      "dram/input": 3,
      "dram/states": 4 * (2 * 3 + 2) + 2}  # Per step: states read + written, the drive read.
  training = energy.gpu_counts((3, 2, 1), tiny_scenario(), model, training=True)
  assert training == {
      "macs/input_drive": 6, "macs/dynamics": 6 * 4, "macs/update": 6 + 4,
      "mults/neurons": 3 * 6 * 3, "adds/neurons": 4 * 6 * 3,
      "mults/optimizer": 10 * 11 / 2, "adds/optimizer": 4 * 11 / 2,
      "dram/weights": (6 + 6 * (2 + 3)) / 2, "dram/input": 2 * 3,
      "dram/states": 6 * (2 * 3 + 2) + 2 + 2 * 3, "dram/optimizer": 8 * 11 / 2}
  symmetric = energy.gpu_counts((3, 2, 1), tiny_scenario(nudged_phases=2), model, True)
  assert symmetric["macs/dynamics"] == (4 + 2 * 2) * 4
  assert symmetric["macs/update"] == 6 + 4  # Still one contrast.
  compute_only = energy.gpu_counts((3, 2, 1), tiny_scenario(dram=False), model, True)
  assert not [k for k in compute_only if k.startswith("dram/")]


def test_published_gpu_scenarios_by_hand(cfg):
  """Blouw et al.'s 29.8 mJ per inference of a 172.8 k-MAC MLP at batch 1 is 172.45 nJ per MAC.

  Rate EP on 3-2-1 at the reference's T 30 + 10 (one nudged phase): inference 6 + 30 * 4 = 126
  MACs, training 6 + 40 * 4 + (6 + 4) = 176 MACs (test_gpu_counts_by_hand's terms).
  """
  entries = energy.published_gpu_entries((3, 2, 1), cfg, energy.gpu_model(cfg))
  assert sorted(entries) == sorted(f"published_{m}/batch{b}" for m in ("per_mac", "per_inference")
                                   for b in (1, 8, 64))
  per_mac = 29.8e9 / 172800  # pJ
  assert per_mac == pytest.approx(172453.7, rel=1e-6)
  one = entries["published_per_mac/batch1"]
  assert one["settings"]["macs"] == {"inference": 126.0, "training": 176.0}
  assert one["inference"]["total_pj"] == pytest.approx(126 * per_mac)
  assert one["training"]["total_pj"] == pytest.approx(176 * per_mac)
  assert entries["published_per_mac/batch64"]["inference"]["total_pj"] == pytest.approx(
      126 * 0.73e9 / 172800)
  assert entries["published_per_inference/batch8"]["inference"]["total_pj"] == pytest.approx(3.6e9)
  assert entries["published_per_inference/batch8"]["training"] is None


def test_published_gpu_config_is_checked(cfg):
  cfg.gpu_published.dynamic_mj_per_inference = (29.8, 3.6)
  with pytest.raises(ValueError, match="one energy per batch"):
    energy.published_gpu(cfg)


def test_gpu_energy_by_hand(cfg):
  gpu, model = energy.gpu_profile(cfg), energy.gpu_model(cfg)
  counts = energy.gpu_counts((3, 2, 1), tiny_scenario(), model, training=False)
  e = energy.gpu_energy(counts, gpu)
  assert e.total == pytest.approx(
      (6 + 16) * (3.7 + 0.9) + 36 * 3.7 + 48 * 0.9 + (13 + 3 + 34) * 640)
  assert dict(e.terms)["dram/weights"] == pytest.approx(13 * 640)
  batch1 = energy.gpu_energy(energy.gpu_counts((3, 2, 1), tiny_scenario(batch=1), model, False),
                             gpu)
  assert batch1.total - e.total == pytest.approx((6 + 4 * 5) / 2 * 640)  # Unshared weights.


def test_gpu_scenarios(cfg):
  run = tiny_run()
  names = [s.name for s in energy.gpu_scenarios(cfg, run)]
  assert names == [f"{s}/{m}" for s in ("rate_ep_steps", "eqspike_steps")
                   for m in ("compute_only", "batch1_dram", "batch2_dram")]
  reference, like_for_like = energy.gpu_scenarios(cfg, run)[0], energy.gpu_scenarios(cfg, run)[3]
  assert (reference.t_free, reference.t_nudge, reference.nudged_phases) == (30, 10, 1)
  assert (like_for_like.t_free, like_for_like.t_nudge, like_for_like.nudged_phases) == (4, 2, 2)


# ================================================================================================
# (b) Event counts of a hand-built network.
# ================================================================================================


def hand_built_params():
  """No synaptic weights: hidden unit 0 sits at u = 1 (bias 1, gamma 1) and emits a spike at the
  end of every step; hidden unit 1 and the output are held silent by a bias of -5."""
  return (Layer(w=jnp.zeros((2, 2)), b=jnp.array([1.0, -5.0])),
          Layer(w=jnp.zeros((2, 1)), b=jnp.array([-5.0])))


@pytest.mark.slow
@pytest.mark.parametrize("nudging", ["symmetric", "one_sided"])
def test_measured_counts_by_hand(cfg, nudging):
  """Examples A = [1, 0.5], B = [0, 0], A again, in batches of 2 (the last one smaller).

  Input trains of A: pixel 0 spikes at every step, pixel 1 at steps 1, 3, 5; over the free
  steps 0-3 that is 4 + 2 spikes, over the nudged steps 4-5, 2 + 1. B has no input spikes.
  Hidden unit 0 emits S(t + 1) at the end of every step t: 4 spikes in the free phase, 2 per
  nudged phase (the counts are of emitted spikes, ``events.phase_events``); it receives
  (same-step pairing: the spikes the rule pairs) S(t) = 0, 1, 1, 1 in the free phase and 1, 1 in
  each nudged phase. Fan-outs: input 2, hidden 1. Per example, free SOPs: A 6*2 + 4 = 16, B 4;
  per nudged phase: A 3*2 + 2 = 8, B 2; synaptic updates per nudged phase (rows of spiking
  inputs, columns of paired hidden spikes): A 3*2 + 2*1 = 8, B 2; one-sided with the free
  contrast also writes over free steps 2-3: A (2 + 1)*2 + 2 = 8, B 2.
  """
  run = tiny_run(nudging)
  images = np.array([[1.0, 0.5], [0.0, 0.0], [1.0, 0.5]], np.float32)
  model = eqspike.model_from_config(run)
  counts = energy_report.measure_events(model, hand_built_params(), images,
                                        np.zeros(3, np.int32), batch_size=2)
  phases = 2 if nudging == "symmetric" else 1
  mean = lambda a, b: (2 * a + b) / 3  # Two A, one B: the last batch weighs 1, not 2.
  expected = {
      "free/spikes/layer0": mean(6, 0), "free/spikes/layer1": 4, "free/spikes/layer2": 0,
      "free/synaptic_ops": mean(16, 4), "free/neuron_updates": 4 * 3,
      "free/synaptic_updates": 0}
  assert flat({"free": counts.inference}) == pytest.approx(expected)
  # Inference is read off the training step's free phase: it must be what prediction runs.
  free = eqspike.free_phase(model.arch, hand_built_params(), jnp.asarray(images), model.dyn,
                            jax.random.PRNGKey(0))
  predicted = events.phase_events(model.arch, free.s_in, free.trace.emitted)
  assert flat(counts.inference) == pytest.approx(flat(predicted))
  expected.update({
      "nudged/spikes/layer0": phases * mean(3, 0), "nudged/spikes/layer1": phases * 2,
      "nudged/spikes/layer2": 0, "nudged/synaptic_ops": phases * mean(8, 2),
      "nudged/neuron_updates": phases * 2 * 3, "nudged/synaptic_updates": phases * mean(8, 2)})
  if nudging == "one_sided":
    expected["free/synaptic_updates"] = mean(8, 2)
  assert flat(counts.training) == pytest.approx(expected)

  loihi = energy.neuromorphic_profiles(cfg)["loihi"]
  updates = phases * 6 + (6 if nudging == "one_sided" else 0)
  assert energy.neuromorphic_training(counts.training, loihi).total == pytest.approx(
      12 * 23.6 + 12 * 52 + phases * 6 * 23.6 + phases * 6 * 52 + updates * 120)


@pytest.mark.parametrize("nudging", ["symmetric", "one_sided"])
def test_current_input_is_counted_as_graded_events_by_hand(nudging):
  """The network above with the pixels as current (``input_mode="current"``): A = [1, 0.5] sends
  one graded event per nonzero pixel when it arrives, 2 in the free phase and none in the
  nudged phases (the input does not change); B = [0, 0] sends none. Free SOPs: A 2*2 + 4 = 8,
  B 4; per nudged phase 2 (the hidden spikes). The rule writes each input synapse of a nonzero
  pixel once per learning phase, A 2*2, B 0, besides the paired hidden spikes' rows, 2: per
  nudged phase A 6, B 2, and the same in the one-sided free contrast's tail (steps 2-3).
  """
  run = tiny_run(nudging)
  run.eqspike.input_mode = "current"
  images = np.array([[1.0, 0.5], [0.0, 0.0], [1.0, 0.5]], np.float32)
  counts = energy_report.measure_events(eqspike.model_from_config(run), hand_built_params(),
                                        images, np.zeros(3, np.int32), batch_size=2)
  phases = 2 if nudging == "symmetric" else 1
  mean = lambda a, b: (2 * a + b) / 3
  assert flat(counts.training) == pytest.approx({
      "free/spikes/layer0": mean(2, 0), "free/spikes/layer1": 4, "free/spikes/layer2": 0,
      "free/synaptic_ops": mean(8, 4), "free/neuron_updates": 12,
      "free/synaptic_updates": mean(6, 2) if nudging == "one_sided" else 0,
      "nudged/spikes/layer0": 0, "nudged/spikes/layer1": phases * 2, "nudged/spikes/layer2": 0,
      "nudged/synaptic_ops": phases * 2, "nudged/neuron_updates": phases * 6,
      "nudged/synaptic_updates": phases * mean(6, 2)})


def test_graded_input_events_are_the_changes_of_the_values():
  values = jnp.array([[[0.0, 0.5, 0.2], [0.0, 0.5, 0.2], [0.3, 0.5, 0.2]]])  # [1, 3 steps, 3].
  np.testing.assert_array_equal(events.graded_input_events(values)[0],
                                [[0, 1, 1], [0, 0, 0], [1, 0, 0]])
  np.testing.assert_array_equal(events.graded_input_events(values, values[:, -1])[0],
                                [[1, 0, 0], [0, 0, 0], [1, 0, 0]])
  np.testing.assert_array_equal(events.written_at_the_end(values)[0],
                                [[0, 0, 0], [0, 0, 0], [1, 1, 1]])


def test_streaming_is_refused_with_current_input():
  run = tiny_run()
  run.eqspike.input_mode, run.eqspike.stream_free_phase = "current", True
  with pytest.raises(ValueError, match="stream_free_phase"):
    config_lib.validate(run)


def write_summary(path, flat_events):
  path.mkdir(exist_ok=True)
  (path / "summary.json").write_text(json.dumps({"events_per_example_last_epoch": flat_events}))


def test_counts_from_summary(tmp_path):
  summary = flat(TINY_COUNTS)
  write_summary(tmp_path / "run", summary)
  counts = energy_report.counts_from_summary(str(tmp_path / "run"))
  assert flat(counts.training) == summary
  assert flat(counts.inference) == {k[len("free/"):]: v for k, v in summary.items()
                                    if k.startswith("free/")}
  # Summaries from before the free phase always carried its weight writes: 0 when absent.
  del summary["free/synaptic_updates"]
  write_summary(tmp_path / "older", summary)
  older = energy_report.counts_from_summary(str(tmp_path / "older"))
  assert float(older.training.free.synaptic_updates) == 0.0
  # Any other missing count is named.
  del summary["nudged/synaptic_updates"]
  write_summary(tmp_path / "broken", summary)
  with pytest.raises(KeyError, match="nudged/synaptic_updates"):
    energy_report.counts_from_summary(str(tmp_path / "broken"))
  with pytest.raises(FileNotFoundError, match="summary.json"):
    energy_report.counts_from_summary(str(tmp_path / "nowhere"))


# ================================================================================================
# (c, d, e) The report: ratios, overridden constants, a measured GPU.
# ================================================================================================


def tiny_counts():
  return energy_report.EventCounts(energy_report.inference_counts(TINY_COUNTS), TINY_COUNTS,
                                   "by hand")


def test_report_ratios_match_its_energies(cfg):
  report = energy_report.build_report(tiny_counts(), tiny_run(), cfg)
  json.dumps(report)  # Plain JSON types only.
  per_operation = [n for n in report["gpu"] if not n.startswith("published")]
  assert set(report["ratios"]) == set(report["gpu"]) and len(per_operation) == 6
  assert len(report["gpu"]) == 6 + 2 * 3  # Two models of the published figure at 3 batches.
  for name, entry in report["gpu"].items():
    for phase in ("inference", "training"):
      if entry[phase] is None:  # The per-inference model prices inference only.
        assert name.startswith("published_per_inference") and phase == "training"
        assert report["ratios"][name]["loihi"][phase] is None
        continue
      if name in per_operation:
        assert entry[phase]["total_pj"] == pytest.approx(sum(entry[phase]["terms_pj"].values()))
      for chip in ("loihi", "odin"):
        assert report["ratios"][name][chip][phase] == pytest.approx(
            entry[phase]["total_pj"] / report["neuromorphic"][chip][phase]["total_pj"])
  loihi = report["neuromorphic"]["loihi"]
  assert loihi["inference"]["total_pj"] == pytest.approx(15 * 23.6 + 12 * 52)
  gpu = report["gpu"]
  # Sharing each weight read over the batch saves energy; arithmetic alone is a lower bound.
  assert (gpu["eqspike_steps/batch1_dram"]["training"]["total_pj"]
          > gpu["eqspike_steps/batch2_dram"]["training"]["total_pj"]
          > gpu["eqspike_steps/compute_only"]["training"]["total_pj"])
  assert report["paper"]["inference_ratio"] == 1e3 and report["paper"]["training_ratio"] == 1e2
  table = energy_report.format_table(report)
  assert "loihi.e_sop" in table and "Davies et al. 2018" in table
  assert "eqspike_steps/batch1_dram" in table and "~1e+03 inference" in table


def test_overriding_a_constant_changes_the_result(cfg):
  before = energy_report.build_report(tiny_counts(), tiny_run(), cfg)
  cfg.loihi.e_sop.value = 30.0
  cfg.gpu.e_dram.value = 100.0
  after = energy_report.build_report(tiny_counts(), tiny_run(), cfg)
  loihi = lambda r: r["neuromorphic"]["loihi"]["inference"]["total_pj"]
  assert loihi(after) - loihi(before) == pytest.approx(15 * (30.0 - 23.6))
  assert after["constants"]["loihi.e_sop"]["value"] == 30.0
  assert (after["neuromorphic"]["odin"] == before["neuromorphic"]["odin"])
  gpu = lambda r, s: r["gpu"][s]["inference"]["total_pj"]
  assert gpu(after, "rate_ep_steps/compute_only") == gpu(before, "rate_ep_steps/compute_only")
  assert gpu(after, "rate_ep_steps/batch1_dram") < gpu(before, "rate_ep_steps/batch1_dram")
  cfg.gpu_model.batch_size = 7
  assert "rate_ep_steps/batch7_dram" in energy_report.build_report(tiny_counts(), tiny_run(),
                                                                   cfg)["gpu"]
  cfg.loihi.e_neuron.value = -1.0
  with pytest.raises(ValueError, match="loihi.e_neuron"):
    energy_report.build_report(tiny_counts(), tiny_run(), cfg)


def test_measured_gpu(cfg):
  assert energy.measured_energy(0.0, 1000.0) is None
  assert energy.measured_energy(300.0, 0.0) is None
  assert energy.measured_energy(300.0, 1e4) == pytest.approx(300.0 / 1e4 * 1e12)  # 30 mJ.
  with pytest.raises(ValueError, match=">= 0"):
    energy.measured_energy(-1.0, 10.0)
  assert "measured" not in energy_report.build_report(tiny_counts(), tiny_run(), cfg)["gpu"]

  cfg.gpu_measured.power_w, cfg.gpu_measured.inference_samples_per_s = 250.0, 5e4
  report = energy_report.build_report(tiny_counts(), tiny_run(), cfg)
  assert report["gpu"]["measured"]["inference"]["total_pj"] == pytest.approx(250.0 / 5e4 * 1e12)
  assert report["gpu"]["measured"]["training"] is None
  ratios = report["ratios"]["measured"]["odin"]
  assert ratios["inference"] == pytest.approx(250.0 / 5e4 * 1e12 / (15 * 12.7 + 12 * 52))
  assert ratios["training"] is None
  assert "measured" in energy_report.format_table(report)


# ================================================================================================
# (f) End to end on a tiny trained run; where reports are written.
# ================================================================================================

TINY_T_FREE, TINY_T_NUDGE = 20, 8


@pytest.fixture(name="trained_workdir", scope="module")
def trained_workdir_fixture(tmp_path_factory, mnist_data_dir):
  from conftest import load_config  # pylint: disable=g-import-not-at-top
  config = load_config("mnist_eqspike", "quick")
  config.update(dict(train_subset=200, eval_subset=100, num_epochs=1, batch_size=50,
                     steps_per_call=4, t_free=TINY_T_FREE, t_nudge=TINY_T_NUDGE,
                     data_dir=mnist_data_dir, download=False))
  workdir = str(tmp_path_factory.mktemp("energy") / "run")
  train.train_and_evaluate(config, workdir)
  return workdir


def tree_of(path):
  """Every directory and file under ``path``, with the files' modification times."""
  out = {}
  for root, dirs, files in os.walk(path):
    out.update({os.path.join(root, d): None for d in dirs})
    out.update({os.path.join(root, f): os.path.getmtime(os.path.join(root, f)) for f in files})
  return out


@pytest.mark.slow
def test_report_for_workdir(trained_workdir, cfg):
  cfg.num_examples, cfg.batch_size = 20, 20
  before = tree_of(trained_workdir)
  report = energy_report.report_for_workdir(trained_workdir, cfg)
  assert tree_of(trained_workdir) == before  # Reading a run creates and changes nothing in it.
  json.dumps(report)
  counts = report["counts"]
  assert counts["source"] == "measured on 20 mnist test examples"
  assert report["run"]["step"] == 4
  free = 512 + 10
  assert counts["inference"]["free/neuron_updates"] == TINY_T_FREE * free
  assert counts["training"]["nudged/neuron_updates"] == 2 * TINY_T_NUDGE * free  # Symmetric.
  # Every input spike reaches the 512 hidden units.
  assert counts["inference"]["free/synaptic_ops"] >= 512 * counts["inference"][
      "free/spikes/layer0"] > 0
  assert counts["training"]["nudged/synaptic_updates"] > 0
  assert counts["training"]["free/synaptic_updates"] == 0  # Symmetric: the free phase is read.
  chip = report["neuromorphic"]["loihi"]["inference"]
  assert chip["total_pj"] == pytest.approx(counts["inference"]["free/synaptic_ops"] * 23.6
                                           + TINY_T_FREE * free * 52)


def test_report_from_the_run_summary(trained_workdir, cfg):
  """The trainer's flattened counts read back through ``StepEvents.from_flat``."""
  cfg.counts = "summary"
  report = energy_report.report_for_workdir(trained_workdir, cfg)
  with open(os.path.join(trained_workdir, "summary.json")) as f:
    summary = json.load(f)["events_per_example_last_epoch"]
  assert report["counts"]["training"] == pytest.approx(summary)
  assert report["counts"]["training"]["nudged/neuron_updates"] == 2 * TINY_T_NUDGE * (512 + 10)
  assert report["run"]["step"] is None


def test_report_refuses_other_runs(tmp_path, cfg):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    energy_report.report_for_workdir(str(tmp_path / "nowhere"), cfg)
  rate = tmp_path / "rate"
  rate.mkdir()
  (rate / "config.json").write_text(config_lib.base_config("rate_ep").to_json())
  with pytest.raises(ValueError, match="'rate_ep' run"):
    energy_report.report_for_workdir(str(rate), cfg)
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "config.json").write_text(tiny_run().to_json())
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    energy_report.report_for_workdir(str(empty), cfg)
  assert os.listdir(empty) == ["config.json"]  # The reader made no checkpoints/ directory.


def test_write_json_skips_only_an_optional_copy(tmp_path):
  logged = []
  required, missing_dir = str(tmp_path / "out" / "a.json"), str(tmp_path / "absent" / "b.json")
  blocked = str(tmp_path / "blocked")
  os.mkdir(blocked)  # A directory where the file should go: open() fails.
  written = reports.write_json({"x": np.arange(2)}, [required, missing_dir, blocked],
                               optional=[missing_dir, blocked], log=logged.append)
  assert written == [required]
  with open(required) as f:
    assert json.load(f) == {"x": [0, 1]}
  assert not os.path.exists(os.path.dirname(missing_dir))  # An optional path creates nothing.
  assert len(logged) == 2 and all(line.startswith("not writing") for line in logged)
  with pytest.raises(OSError):
    reports.write_json({}, [blocked], log=logged.append)


def test_launcher_main(trained_workdir, tmp_path, capsys, monkeypatch):
  """``launch/energy.py``'s main as the command line runs it (in process: no second start-up;
  absl parses the config flags once per process, so both runs share one parse): with a
  writable workdir, then with one that cannot be written to."""
  monkeypatch.syspath_prepend(REPO_ROOT)  # launch/ is not installed; it runs from the checkout.
  from launch import energy as launcher  # pylint: disable=g-import-not-at-top
  output = str(tmp_path / "out" / "energy.json")
  argv = ["launch.energy", "--workdir", trained_workdir, "--output", output,
          "--energy", os.path.join(REPO_ROOT, "configs", "energy.py"),
          "--energy.num_examples=20", "--energy.batch_size=20", "--energy.loihi.e_sop.value=30"]
  monkeypatch.setattr(sys, "argv", argv)  # config_flags finds its overrides in sys.argv.
  flags.FLAGS(argv)
  try:
    launcher.main(argv[:1])
    printed = capsys.readouterr().out
    assert "Ratio GPU / neuromorphic" in printed and "loihi.e_sop" in printed
    with open(output) as f:
      report = json.load(f)
    copy = os.path.join(trained_workdir, "energy.json")
    with open(copy) as f:
      assert json.load(f) == report
    assert report["constants"]["loihi.e_sop"]["value"] == 30.0
    assert report["network"]["t_free"] == TINY_T_FREE
    assert report["counts"]["source"] == "measured on 20 mnist test examples"

    # A read-only workdir: the table and --output survive, and one line says so.
    os.remove(copy)
    os.remove(output)
    before = tree_of(trained_workdir)
    # Tests run as root, whom permission bits do not stop: deny writes where the launcher asks.
    real_access, denied = os.access, os.path.abspath(trained_workdir)
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: (
        False if os.path.abspath(path) == denied and mode & os.W_OK
        else real_access(path, mode, *a, **k)))
    launcher.main(argv[:1])
  finally:
    flags.FLAGS.unparse_flags()
  printed = capsys.readouterr().out
  assert "Ratio GPU / neuromorphic" in printed
  assert [line for line in printed.splitlines() if line.startswith("not writing")] == [
      f"not writing {copy}: {trained_workdir} is not writable (the report is only in "
      f"{output})."]
  assert tree_of(trained_workdir) == before
  with open(output) as f:
    assert json.load(f) == report
