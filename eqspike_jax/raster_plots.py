"""Spike rasters and state traces of one example through the phases of a training step.

Both figures draw a record of ``analysis.trajectories.record``: the input trains, and per phase
(``free``, ``nudged_plus``, ``nudged_minus``) the states ``u`` (``[T + 1, n]`` per free layer)
and the spikes emitted (``[T, n]``). Like ``plots``, they are made without pyplot.
"""

from typing import List, Optional, Sequence

import matplotlib
from matplotlib import lines
from matplotlib import patches
from matplotlib.figure import Figure
import numpy as np

from eqspike_jax.plots import FREE_COLOUR, MINUS_COLOUR, NUDGED_SHADE, PLUS_COLOUR

PHASES = ("free", "nudged_plus", "nudged_minus")


def _as_numpy(rec: dict) -> dict:
  """The record's arrays on the host (it may hold JAX arrays)."""
  out = {"input_spikes": np.asarray(rec["input_spikes"])}
  for phase in PHASES:
    out[phase] = {k: [np.asarray(a) for a in rec[phase][k]] for k in ("u", "spikes")}
  return out


def _phase_lengths(rec: dict):
  return len(rec["free"]["spikes"][0]), len(rec["nudged_plus"]["spikes"][0])


def _layer_names(num_free: int):
  hidden = ["hidden"] if num_free == 2 else [f"hidden {l}" for l in range(1, num_free)]
  return hidden + ["output"]


def _subset(candidates: np.ndarray, k: int, seed: int) -> np.ndarray:
  """At most ``k`` of ``candidates``, drawn without replacement and sorted (a fixed seed)."""
  if len(candidates) <= k:
    return np.sort(candidates)
  return np.sort(np.random.default_rng(seed).choice(candidates, k, replace=False))


def _mark_phases(ax, t_free: int, t_total: int, label: bool) -> None:
  """Shades the nudged phases and marks where they start."""
  ax.axvspan(t_free, t_total, color=NUDGED_SHADE, zorder=0, linewidth=0)
  ax.axvline(t_free, color="0.3", linestyle="--", linewidth=1.0, zorder=1)
  ax.set_xlim(0, t_total + 0.5)
  if label:
    ax.text(t_free / 2, 1.01, "free phase", transform=ax.get_xaxis_transform(), ha="center",
            va="bottom", fontsize="small")
    ax.text((t_free + t_total) / 2, 1.01, "nudged phases (+β, −β)",
            transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize="small")


def _new_axes(num_panels: int, height_ratios: Sequence[float], figsize):
  fig = Figure(figsize=figsize, layout="constrained")
  return list(fig.subplots(num_panels, 1, sharex=True, squeeze=False,
                           gridspec_kw={"height_ratios": list(height_ratios)})[:, 0])


# ================================================================================================
# Spike raster.
# ================================================================================================


def _raster_rows(ax, times: np.ndarray, spikes: np.ndarray, rows: np.ndarray, lo: float,
                 hi: float, colour: str, width: float = 1.0) -> None:
  """One tick per spike of the neurons ``rows``: row ``i`` spans ``[i + lo, i + hi]``."""
  t, i = np.nonzero(spikes[:, rows])
  ax.vlines(times[t], i + lo, i + hi, color=colour, linewidth=width)


def _shown_neurons(rec: dict, num_input: int, num_hidden: int, seed: int) -> List[np.ndarray]:
  """The rows of every panel: active input pixels, spiking hidden neurons, every output."""
  num_free = len(rec["free"]["spikes"])
  rows = [_subset(np.flatnonzero(rec["input_spikes"].sum(0)), num_input, seed)]
  for l in range(num_free - 1):
    active = sum(rec[p]["spikes"][l].sum(0) for p in PHASES)
    rows.append(_subset(np.flatnonzero(active), num_hidden, seed + 1 + l))
  rows.append(np.arange(rec["free"]["spikes"][-1].shape[1]))
  return rows


def _draw_raster_panel(ax, rec: dict, panel: int, rows: np.ndarray) -> None:
  """The spikes of layer ``panel`` (0: the input) in all phases."""
  t_free, t_nudge = _phase_lengths(rec)
  t_total = t_free + t_nudge
  _mark_phases(ax, t_free, t_total, label=panel == 0)
  if panel == 0:
    # The input train S_x(t) drives the step that starts at t.
    _raster_rows(ax, np.arange(t_total), rec["input_spikes"], rows, -0.4, 0.4, FREE_COLOUR)
    return
  # The layers' spikes are emitted at the end of steps, at times 1 .. t_total.
  l, nudged_times = panel - 1, np.arange(t_free + 1, t_total + 1)
  _raster_rows(ax, np.arange(1, t_free + 1), rec["free"]["spikes"][l], rows, -0.4, 0.4,
               FREE_COLOUR)
  # Half-height ticks: thicker, so their colour stays readable.
  _raster_rows(ax, nudged_times, rec["nudged_plus"]["spikes"][l], rows, 0.0, 0.45, PLUS_COLOUR,
               1.6)
  _raster_rows(ax, nudged_times, rec["nudged_minus"]["spikes"][l], rows, -0.45, 0.0,
               MINUS_COLOUR, 1.6)


def _label_raster_panel(ax, rec: dict, panel: int, name: str, rows: np.ndarray,
                        label: Optional[int]) -> None:
  """The panel's y axis: how many neurons it shows, and the output classes by name."""
  ax.set_ylim(-0.7, len(rows) - 0.3)
  total = (rec["input_spikes"] if panel == 0 else rec["free"]["spikes"][panel - 1]).shape[1]
  what = "active pixels" if panel == 0 else "spiking neurons"
  shown = f"all {total}" if len(rows) == total else f"{len(rows)} of {total}, {what}"
  ax.set_ylabel(f"{name}\n({shown})", fontsize="small")
  if name != "output":
    ax.set_yticks([])
    return
  ax.set_yticks(np.arange(len(rows)), [str(c) for c in rows], fontsize="x-small")
  if label is not None:
    ax.axhspan(label - 0.5, label + 0.5, color="gold", alpha=0.35, zorder=0, linewidth=0)
    ax.get_yticklabels()[label].set_fontweight("bold")


def _raster_legend(fig: Figure, label: Optional[int]) -> None:
  handles = [lines.Line2D([], [], color=c, marker="|", linestyle="none", markersize=10,
                          markeredgewidth=1.5) for c in (FREE_COLOUR, PLUS_COLOUR, MINUS_COLOUR)]
  names = ["free (and input)", "nudged +β (upper half of a row)", "nudged −β (lower half)"]
  if label is not None:
    handles.append(patches.Patch(color="gold", alpha=0.35))
    names.append(f"target class ({label})")
  fig.legend(handles, names, loc="outside lower center", ncols=len(names), fontsize="small",
             frameon=False)


def spike_raster(rec: dict, axes=None, num_input: int = 40, num_hidden: int = 40, seed: int = 0,
                 label: Optional[int] = None, title: Optional[str] = None) -> Figure:
  """Spikes of every layer through the free phase and both nudged phases of one example.

  Rows are neurons: a random subset of the active input pixels (those that spike), a random
  subset of the hidden neurons that spike in some phase, and every output neuron. In the nudged
  phases each row is split: the upper half shows the spikes at ``+beta``, the lower half those at
  ``-beta`` (the input trains are the same in both).

  Args:
    rec: an ``analysis.trajectories.record``.
    axes: one axes per layer (input, hidden..., output), sharing the time axis; new when None.
    num_input: input rows shown.
    num_hidden: rows shown per hidden layer.
    seed: picks the subsets.
    label: the target class, whose output row is highlighted.
    title: the figure title.

  Returns:
    The figure.
  """
  rec = _as_numpy(rec)
  rows = _shown_neurons(rec, num_input, num_hidden, seed)
  if axes is None:
    # The output has few rows but is what the nudge acts on: give it room.
    axes = _new_axes(len(rows), [max(len(r), 20) for r in rows], (10, 10))
  names = ["input"] + _layer_names(len(rec["free"]["spikes"]))
  for panel, (ax, name, r) in enumerate(zip(axes, names, rows)):
    _draw_raster_panel(ax, rec, panel, r)
    _label_raster_panel(ax, rec, panel, name, r, label)
  axes[-1].set_xlabel("time step")
  fig = axes[0].figure
  _raster_legend(fig, label)
  if title:
    fig.suptitle(title)
  return fig


# ================================================================================================
# State traces.
# ================================================================================================


def _most_nudged(rec: dict, layer: int, k: int):
  """The ``k`` neurons of ``layer`` whose end states differ most between +beta and -beta.

  That difference is what the learning rule turns into a weight change, so these are the
  neurons through which the example teaches the network. Ties (all of them when the output
  already sits on its target and the nudge is 0) go to the neurons whose state varies most over
  time (neither silent nor saturated). Returns the neurons and whether the nudge moved any.
  """
  gap = np.abs(rec["nudged_plus"]["u"][layer][-1] - rec["nudged_minus"]["u"][layer][-1])
  spread = np.concatenate([rec[p]["u"][layer] for p in PHASES]).std(0)
  order = np.lexsort((-spread, -gap))  # By gap, then spread, both descending.
  return np.sort(order[:k]), bool(gap.max() > 0)


def _draw_layer_traces(ax, rec: dict, l: int, name: str, num_hidden: int,
                       label: Optional[int]) -> None:
  """The states of layer ``l``'s shown neurons, one colour each, through the three phases."""
  t_free, t_nudge = _phase_lengths(rec)
  _mark_phases(ax, t_free, t_free + t_nudge, label=l == 0)
  free_times, nudged_times = np.arange(t_free + 1), np.arange(t_free, t_free + t_nudge + 1)
  output = l == len(rec["free"]["u"]) - 1
  if output:
    neurons = np.arange(rec["free"]["u"][l].shape[1])
  else:
    neurons, moved = _most_nudged(rec, l, num_hidden)
  for j, n in enumerate(neurons):
    colour = matplotlib.colormaps["tab10"](j % 10)
    bold = output and n == label
    width = 2.6 if bold else 1.2
    tag = (f"{n} (target)" if bold else str(n)) if output else None
    ax.plot(free_times, rec["free"]["u"][l][:, n], color=colour, linewidth=width, label=tag)
    ax.plot(nudged_times, rec["nudged_plus"]["u"][l][:, n], color=colour, linewidth=width)
    ax.plot(nudged_times, rec["nudged_minus"]["u"][l][:, n], color=colour, linewidth=width,
            linestyle="--")
  ax.set_ylim(-0.03, 1.03)
  ax.grid(True, alpha=0.3)
  if output:
    ax.set_ylabel("output state u\n(all classes)", fontsize="small")
    ax.legend(title="class", loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small",
              title_fontsize="small", frameon=False)
  else:
    total = rec["free"]["u"][l].shape[1]
    which = "most moved\nby the nudge" if moved else "most variable;\nthe nudge moves none"
    ax.set_ylabel(f"{name} state u\n({len(neurons)} of {total}, {which})", fontsize="small")


def state_traces(rec: dict, axes=None, num_hidden: int = 8, label: Optional[int] = None,
                 title: Optional[str] = None) -> Figure:
  """States ``u(t)`` of hidden and output neurons through the free and both nudged phases.

  Each neuron keeps its colour: a solid line through the free phase and on through the ``+beta``
  phase, a dashed line through the ``-beta`` phase; both nudged phases start from the free end
  state. Hidden panels show the ``num_hidden`` neurons whose end states the two nudges pull apart
  most; the output panel shows every class.

  Args:
    rec: an ``analysis.trajectories.record``.
    axes: one axes per free layer (hidden..., output), sharing the time axis; new when None.
    num_hidden: neurons shown per hidden layer.
    label: the target class, whose output trace is drawn bold.
    title: the figure title.

  Returns:
    The figure.
  """
  rec = _as_numpy(rec)
  num_free = len(rec["free"]["u"])
  if axes is None:
    axes = _new_axes(num_free, [1.0] * num_free, (10, 3.2 * num_free + 0.6))
  for l, (ax, name) in enumerate(zip(axes, _layer_names(num_free))):
    _draw_layer_traces(ax, rec, l, name, num_hidden, label)
  axes[-1].set_xlabel("time step")
  fig = axes[0].figure
  handles = [lines.Line2D([], [], color="0.3", linestyle=s) for s in ("-", "--")]
  fig.legend(handles, ["free, then nudged +β", "nudged −β"], loc="outside lower center",
             ncols=2, fontsize="small", frameon=False)
  if title:
    fig.suptitle(title)
  return fig
