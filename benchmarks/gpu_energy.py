r"""GPU energy per example of rate EP, measured: board power sampled while inference and training run.

  python -m benchmarks.gpu_energy --config configs/mnist_rate_ep.py --out results/gpu_energy.json \
      [--batches 1,50,1000] [--seconds 15] [--idle_seconds 10] [--hz 20]

For each batch size, after compiling: the board's idle power with nothing running, then the
jitted inference (the free phase and readout, ``predict``) and the jitted training step
(``update``) called back to back for ``--seconds`` each while a thread reads the board power at
``--hz`` (NVML through ``pynvml`` when installed, else ``nvidia-smi --query-gpu=power.draw``).
Energy per example = mean power / throughput (total), and (mean power - idle) / throughput
(dynamic, the figure of Blouw et al. 2018 that ``configs/energy.py`` quotes). The JSON is what
``launch.energy`` reads with ``--energy.gpu_measured.file``. Rate EP is the GPU side of the
paper's comparison; any config runs (an EqSpike config measures the spiking network on a GPU). Inputs are random images: a rate
network's work does not depend on the pixel values. With the defaults one run takes about
3 x (10 + 2 x 15) s plus compilation: under 3 minutes.
"""

import dataclasses
import json
import shutil
import subprocess
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np

from benchmarks import common
from eqspike_jax import workdir as workdir_lib

_CONFIG = config_flags.DEFINE_config_file("config", "configs/mnist_rate_ep.py", "The network.")
_OUT = flags.DEFINE_string("out", "results/gpu_energy.json", "Where the JSON goes.")
_BATCHES = flags.DEFINE_list("batches", ["1", "50", "1000"], "Batch sizes.")
_SECONDS = flags.DEFINE_float("seconds", 15.0, "Seconds of each workload per batch size.")
_IDLE_SECONDS = flags.DEFINE_float("idle_seconds", 10.0, "Seconds of idle power per batch size.")
_HZ = flags.DEFINE_float("hz", 20.0, "Power samples per second (>= 10).")

PowerSource = Callable[[], float]  # () -> board power in W.


def nvml_power_source(index: int = 0) -> PowerSource:
  import pynvml  # pylint: disable=g-import-not-at-top
  pynvml.nvmlInit()
  handle = pynvml.nvmlDeviceGetHandleByIndex(index)
  return lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0  # mW -> W.


def nvidia_smi_power_source(index: int = 0) -> PowerSource:
  command = ["nvidia-smi", f"--id={index}", "--query-gpu=power.draw",
             "--format=csv,noheader,nounits"]
  return lambda: float(subprocess.check_output(command, text=True).strip().splitlines()[0])


def default_power_source() -> PowerSource:
  """NVML when ``pynvml`` imports, else nvidia-smi; a clear error on a machine without either."""
  try:
    return nvml_power_source()
  except Exception:  # pylint: disable=broad-except
    pass
  if shutil.which("nvidia-smi"):
    return nvidia_smi_power_source()
  raise RuntimeError("no GPU power reading: neither NVML (pip install nvidia-ml-py) nor "
                     "nvidia-smi is available. This benchmark runs on an NVIDIA GPU only.")


class PowerSampler:
  """Reads ``source`` every ``1 / hz`` s on a thread between ``start`` and ``stop``."""

  def __init__(self, source: PowerSource, hz: float):
    if hz < 10:
      raise ValueError(f"hz = {hz}: sample at least 10 times a second.")
    self._source, self._period = source, 1.0 / hz
    self._samples: List[tuple] = []
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None

  def _run(self):
    next_t = time.perf_counter()
    while not self._stop.is_set():
      self._samples.append((time.perf_counter(), float(self._source())))
      next_t += self._period
      self._stop.wait(max(0.0, next_t - time.perf_counter()))

  def start(self) -> "PowerSampler":
    self._samples, self._stop = [], threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()
    return self

  def stop(self) -> np.ndarray:
    """The samples ``[n, 2]`` (time s, power W)."""
    self._stop.set()
    self._thread.join()
    return np.array(self._samples, dtype=np.float64).reshape(-1, 2)


@dataclasses.dataclass(frozen=True)
class Measurement:
  examples: int
  seconds: float
  mean_power_w: float
  num_samples: int
  sample_hz: float

  @property
  def samples_per_s(self) -> float:
    return self.examples / self.seconds


def power_stats(samples: np.ndarray) -> Dict[str, float]:
  if samples.shape[0] < 2:
    raise RuntimeError(f"only {samples.shape[0]} power samples; run longer or sample faster.")
  span = samples[-1, 0] - samples[0, 0]
  return {"mean_power_w": float(np.mean(samples[:, 1])), "num_samples": int(samples.shape[0]),
          "sample_hz": float((samples.shape[0] - 1) / span) if span > 0 else float("inf")}


def run_loaded(call: Callable[[], object], examples_per_call: int, seconds: float,
               sampler: PowerSampler) -> Measurement:
  """Calls ``call`` back to back for at least ``seconds`` while sampling power."""
  sampler.start()
  start, examples = time.perf_counter(), 0
  while time.perf_counter() - start < seconds:
    jax.block_until_ready(call())
    examples += examples_per_call
  elapsed = time.perf_counter() - start
  stats = power_stats(sampler.stop())
  return Measurement(examples=examples, seconds=elapsed, **stats)


def measure_idle(seconds: float, sampler: PowerSampler) -> Dict[str, float]:
  sampler.start()
  time.sleep(seconds)
  return power_stats(sampler.stop())


def energy_per_example(loaded: Measurement, idle_w: float) -> Dict[str, float]:
  """J per example: total (board power / throughput) and dynamic ((power - idle) / throughput)."""
  rate = loaded.samples_per_s
  return {"samples_per_s": rate, "mean_power_w": loaded.mean_power_w,
          "total_j_per_example": loaded.mean_power_w / rate,
          "dynamic_j_per_example": (loaded.mean_power_w - idle_w) / rate,
          "num_power_samples": loaded.num_samples, "sample_hz": loaded.sample_hz,
          "seconds": loaded.seconds, "examples": loaded.examples}


def workloads(config, batch: int, key) -> Dict[str, Callable[[], object]]:
  """The jitted inference and training step of ``config`` at ``batch``, compiled and warm."""
  config = config.copy_and_resolve_references()
  config.batch_size = batch
  trainer = common.build_trainer(config, total_steps=1000)
  algorithm, state = trainer.algorithm, trainer.state
  x = jax.random.uniform(key, (batch, config.layer_sizes[0]), jnp.float32)
  y = jax.nn.one_hot(jnp.arange(batch) % config.layer_sizes[-1], config.layer_sizes[-1])
  predict = jax.jit(algorithm.predict)
  update = jax.jit(algorithm.update)
  params, opt_state = state.params, state.opt_state
  calls = {"inference": lambda: predict(params, x, key),
           "training": lambda: update(params, opt_state, x, y, key)}
  for call in calls.values():
    jax.block_until_ready(call())  # Compile outside the measured time.
  return calls


def measure(config, batches: Sequence[int], source: PowerSource, seconds: float,
            idle_seconds: float, hz: float, log: Callable = print) -> Dict:
  """The whole measurement, as the JSON ``launch.energy`` reads."""
  sampler = PowerSampler(source, hz)
  out = {}
  for batch in batches:
    calls = workloads(config, batch, jax.random.PRNGKey(0))
    idle = measure_idle(idle_seconds, sampler)
    entry = {"idle": idle}
    for name, call in calls.items():
      entry[name] = energy_per_example(run_loaded(call, batch, seconds, sampler),
                                       idle["mean_power_w"])
      log(f"batch {batch:5d} {name:9s}: {entry[name]['samples_per_s']:10.0f} samples/s, "
          f"{entry[name]['mean_power_w']:6.1f} W (idle {idle['mean_power_w']:.1f} W), "
          f"{entry[name]['dynamic_j_per_example'] * 1e6:10.2f} uJ dynamic per example")
    out[str(batch)] = entry
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  source = default_power_source()
  by_batch = measure(config, [int(b) for b in _BATCHES.value], source, _SECONDS.value,
                     _IDLE_SECONDS.value, _HZ.value)
  report = {"config_name": config.name, "layer_sizes": list(config.layer_sizes),
            "t_free": config.t_free, "t_nudge": config.t_nudge, "git_sha": workdir_lib.git_sha(),
            "devices": [str(d) for d in jax.devices()],
            "device_kind": jax.devices()[0].device_kind, "batches": by_batch}
  with open(_OUT.value, "w") as f:
    json.dump(report, f, indent=1)
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
