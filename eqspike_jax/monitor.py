"""Host-side watching of a run: per-epoch sums, throughput, progress lines and health checks.

Everything here reads the flattened per-step metrics the trainer fetches after each jitted call;
nothing runs on the device. A run that stops is stopped with a message naming the step, the
metric and the likely cause, and the checkpoint it can go back to.
"""

import dataclasses
import math
import time
from typing import Dict, Optional

import numpy as np

PROGRESS_EVERY_S = 15.0  # A progress line at least this often during an epoch.
MIN_STEPS_FOR_CHANCE = 50  # Steps after which accuracy at chance means a collapse.


class TrainingCollapsed(RuntimeError):
  """Training runs but learns nothing (or has broken down): stopped, with the likely cause."""


@dataclasses.dataclass
class EpochMeter:
  """Running sums of the epoch in progress: metrics, throughput, progress lines.

  Throughput counts only this epoch's calls, and leaves out calls that compiled. The sums go
  into every checkpoint (``state_dict``), so an epoch interrupted and resumed reports the
  metrics of all its steps, not only of those after the resume.
  """
  steps_per_epoch: int
  total_steps: int
  start: float = dataclasses.field(default_factory=time.time)
  train_time: float = 0.0
  train_samples: int = 0
  sums: Dict[str, float] = dataclasses.field(default_factory=dict)
  steps: int = 0
  last_line: float = dataclasses.field(default_factory=time.time)

  def add(self, metrics: Dict[str, np.ndarray], samples: int, elapsed: float, compiled: bool):
    for name, values in metrics.items():
      self.sums[name] = self.sums.get(name, 0.0) + float(np.sum(values, dtype=np.float64))
    self.steps += len(next(iter(metrics.values())))
    if not compiled:
      self.train_time += elapsed
      self.train_samples += samples

  @property
  def samples_per_s(self) -> Optional[float]:
    return self.train_samples / self.train_time if self.train_time else None

  def means(self) -> Dict[str, float]:
    return {k: v / self.steps for k, v in self.sums.items()}

  def state_dict(self, now: Optional[float] = None) -> dict:
    """What a checkpoint keeps of the epoch in progress (JSON)."""
    now = time.time() if now is None else now
    return {"wall_s": now - self.start, "train_time": self.train_time,
            "train_samples": self.train_samples, "sums": dict(self.sums), "steps": self.steps}

  @classmethod
  def resumed(cls, steps_per_epoch: int, total_steps: int, saved: Optional[dict],
              now: Optional[float] = None) -> "EpochMeter":
    """A meter that continues the sums of ``saved`` (a ``state_dict``), or a fresh one."""
    now = time.time() if now is None else now
    meter = cls(steps_per_epoch, total_steps, start=now, last_line=now)
    if saved:
      meter.start = now - saved["wall_s"]
      meter.train_time, meter.train_samples = saved["train_time"], saved["train_samples"]
      meter.sums, meter.steps = dict(saved["sums"]), saved["steps"]
    return meter

  def progress(self, step: int, now: Optional[float] = None) -> Optional[str]:
    """A progress line when ``PROGRESS_EVERY_S`` has passed since the last one, else None."""
    now = time.time() if now is None else now
    if now - self.last_line < PROGRESS_EVERY_S or not self.steps:
      return None
    self.last_line = now
    epoch, offset = divmod(step, self.steps_per_epoch)
    step_s = (now - self.start) / self.steps
    left = ", ".join(f"{name} {(steps * step_s) / 60:.1f} min left" for name, steps in
                     (("epoch", (self.steps_per_epoch - offset) % self.steps_per_epoch),
                      ("run", self.total_steps - step)))
    return (f"step {step} (epoch {epoch + 1}, {100 * offset / self.steps_per_epoch:.0f} %): "
            f"running train accuracy {self.sums['accuracy'] / self.steps:.4f}, "
            f"{self.samples_per_s or float('nan'):.0f} samples/s, {left}")


def _checkpoint_hint(last_checkpoint: Optional[int]) -> str:
  if last_checkpoint is None:
    return "no checkpoint was saved yet, so a rerun starts from scratch"
  return f"the last checkpoint, at step {last_checkpoint}, precedes this step"


def check_finite(metrics: Dict[str, np.ndarray], first_step: int,
                 last_checkpoint: Optional[int] = None) -> None:
  """Raises on the first non-finite per-step metric, naming the step and the metric."""
  for k in range(len(next(iter(metrics.values())))):
    for name in sorted(metrics):
      value = metrics[name][k]
      if not np.all(np.isfinite(value)):
        raise FloatingPointError(
            f"Training diverged: {name} = {value} at step {first_step + k}. The updates grew "
            f"without bound: lower the learning rates (or beta), or check the initialisation; "
            f"{_checkpoint_hint(last_checkpoint)}.")


def chance_band(num_classes: int, num_examples: int) -> float:
  """The accuracy below which a classifier is indistinguishable from chance (chance + 4 std)."""
  p = 1.0 / num_classes
  return p + 4.0 * math.sqrt(p * (1 - p) / max(num_examples, 1))


def check_health(record: dict, num_classes: int, num_test: int,
                 last_checkpoint: Optional[int]) -> None:
  """Stops a run that trains without learning, after the epoch ``record`` describes.

  * every update of the epoch was exactly zero (nothing can change any more);
  * a free layer silent (its mean state 0) or saturated (1) over the whole epoch;
  * test accuracy at chance after the epoch (chance + 4 binomial std), once the run has taken
    ``MIN_STEPS_FOR_CHANCE`` steps (a few steps of a tiny test run may not have learned yet).
  """
  where = f"after epoch {record['epoch']} (step {record['step']})"
  hint = _checkpoint_hint(last_checkpoint)
  norms = {k: v for k, v in record.items() if k.startswith("train_grad_norm/")}
  if norms and all(v == 0.0 for v in norms.values()):
    raise TrainingCollapsed(
        f"Training collapsed {where}: every update was exactly zero ({sorted(norms)}). Likely "
        f"cause: beta so small that the nudged and free states are equal in float32, or a "
        f"network with no activity; raise beta. {hint}.")
  for name, value in sorted(record.items()):
    if name.startswith("train_activity/") and (value <= 1e-6 or value >= 1 - 1e-6):
      state = "silent (every unit at 0)" if value <= 1e-6 else "saturated (every unit at 1)"
      raise TrainingCollapsed(
          f"Training collapsed {where}: {name[len('train_activity/'):]} is {state} over the "
          f"whole epoch (mean state {value:.3g}). Likely cause: learning rates too large, or an "
          f"initialisation scale that drives the layer out of range. {hint}.")
  band = chance_band(num_classes, num_test)
  if record["step"] >= MIN_STEPS_FOR_CHANCE and record["test_accuracy"] <= band:
    raise TrainingCollapsed(
        f"Training collapsed {where}: test accuracy {record['test_accuracy']:.4f} is at chance "
        f"(<= {band:.4f} for {num_classes} classes on {num_test} examples). Likely cause: "
        f"learning rates too large (the weights jump past anything useful) or beta too small "
        f"(the contrast is rounding noise); {hint}.")
