"""Figures of the notebooks: training curves, spike rasters and state traces.

Every function takes data (run summaries, or a ``trajectories.record``) and optionally the axes to
draw on, and returns the figure. Figures are ``matplotlib.figure.Figure`` objects made without
pyplot, so nothing is kept in pyplot's global list of open figures and nothing depends on the
backend; ``save`` writes them as PNG.
"""

import os
from typing import Mapping, Optional, Sequence

import matplotlib
from matplotlib import lines
from matplotlib import patches
from matplotlib import ticker
from matplotlib.figure import Figure
import numpy as np

PAPER_ACCURACY = 0.976  # EqSpike on MNIST, the paper's abstract (EQSPIKE.md).

# One colour family per model, so the variants of a model read as a group.
_MODEL_COLOURS = {"eqspike": "Blues", "rate_ep": "Oranges"}
_LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
FREE_COLOUR = "black"
PLUS_COLOUR = "tab:red"
MINUS_COLOUR = "tab:blue"
NUDGED_SHADE = "0.93"


def save(fig: Figure, path: str, dpi: int = 120) -> str:
  """Writes ``fig`` to ``path`` as PNG, creating its folder; returns ``path``."""
  folder = os.path.dirname(path)
  if folder:
    os.makedirs(folder, exist_ok=True)
  fig.savefig(path, dpi=dpi, format="png", bbox_inches="tight")
  return path


def panels(nrows: int = 1, ncols: int = 1, figsize=(8.0, 4.8)) -> list:
  """A new figure's grid of axes, as a flat list in reading order (for the ``ax`` arguments)."""
  fig = Figure(figsize=figsize, layout="constrained")
  return list(fig.subplots(nrows, ncols, squeeze=False).flat)


# ================================================================================================
# Training curves.
# ================================================================================================


def _model_of(summary: dict) -> str:
  return summary.get("config", {}).get("model", "")


def training_curves(summaries: Mapping[str, dict], ax=None,
                    paper_accuracy: Optional[float] = PAPER_ACCURACY,
                    highlight: Optional[Sequence[str]] = None,
                    title: Optional[str] = None) -> Figure:
  """Test accuracy per epoch of several runs, with the paper's accuracy as a reference line.

  Args:
    summaries: label -> run summary (``train.make_summary``: ``test_accuracy_per_epoch`` and
      ``config.model``), drawn in this order.
    ax: the axes to draw on; a new figure when None.
    paper_accuracy: the reference line (a fraction); None for none.
    highlight: labels drawn bold with markers, the others thin; None highlights every run.
    title: the axes title.

  Returns:
    The figure.
  """
  if ax is None:
    ax = panels(figsize=(8.0, 6.0))[0]
  highlight = set(summaries if highlight is None else highlight)
  by_model = {}
  for label, summary in summaries.items():
    by_model.setdefault(_model_of(summary), []).append(label)
  for model, labels in by_model.items():
    cmap = matplotlib.colormaps[_MODEL_COLOURS.get(model, "Greys")]
    for i, label in enumerate(labels):
      acc = 100.0 * np.asarray(summaries[label]["test_accuracy_per_epoch"], float)
      epochs = np.arange(1, len(acc) + 1)
      bold = label in highlight
      # Darkest first: the first run of a model is its reference.
      colour = cmap(0.85 - 0.45 * i / max(len(labels) - 1, 1))
      ax.plot(epochs, acc, color=colour, linestyle=_LINESTYLES[i % len(_LINESTYLES)],
              linewidth=2.4 if bold else 1.3, marker="o" if bold else None, markersize=4,
              label=f"{label} ({acc[-1]:.2f} %)", zorder=3 if bold else 2)
  if paper_accuracy is not None:
    ax.axhline(100.0 * paper_accuracy, color="0.2", linestyle=(0, (1, 2)), linewidth=1.5,
               label=f"paper, EqSpike ({100 * paper_accuracy:.1f} %)", zorder=1)
  ax.set_xlabel("epoch")
  ax.set_ylabel("test accuracy (%)")
  ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
  ax.grid(True, alpha=0.3)
  # Below the axes: inside, it would hide the curves that end low.
  ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=2,
            frameon=False)
  if title:
    ax.set_title(title)
  return ax.figure


# ================================================================================================
# Spike rasters and state traces of one example (trajectories.record).
# ================================================================================================


def _as_numpy(rec: dict) -> dict:
  """The record's arrays on the host (it may hold JAX arrays)."""
  out = {"input_spikes": np.asarray(rec["input_spikes"])}
  for phase in ("free", "nudged_plus", "nudged_minus"):
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


def _raster_rows(ax, times: np.ndarray, spikes: np.ndarray, rows: np.ndarray, lo: float,
                 hi: float, colour: str, width: float = 1.0) -> None:
  """One tick per spike of the neurons ``rows``: row ``i`` spans ``[i + lo, i + hi]``."""
  t, i = np.nonzero(spikes[:, rows])
  ax.vlines(times[t], i + lo, i + hi, color=colour, linewidth=width)


def spike_raster(rec: dict, axes=None, num_input: int = 40, num_hidden: int = 40, seed: int = 0,
                 label: Optional[int] = None, title: Optional[str] = None) -> Figure:
  """Spikes of every layer through the free phase and both nudged phases of one example.

  Rows are neurons: a random subset of the active input pixels (those that spike), a random
  subset of the hidden neurons that spike in some phase, and every output neuron. In the nudged
  phases each row is split: the upper half shows the spikes at ``+beta``, the lower half those at
  ``-beta`` (the input trains are the same in both).

  Args:
    rec: a ``trajectories.record``.
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
  t_free, t_nudge = _phase_lengths(rec)
  t_total = t_free + t_nudge
  num_free = len(rec["free"]["spikes"])
  s_in = rec["input_spikes"]
  inputs = _subset(np.flatnonzero(s_in.sum(0)), num_input, seed)
  rows = [inputs]
  for l in range(num_free - 1):
    active = sum(rec[p]["spikes"][l].sum(0) for p in ("free", "nudged_plus", "nudged_minus"))
    rows.append(_subset(np.flatnonzero(active), num_hidden, seed + 1 + l))
  rows.append(np.arange(rec["free"]["spikes"][-1].shape[1]))
  if axes is None:
    # The output has few rows but is what the nudge acts on: give it room.
    axes = _new_axes(len(rows), [max(len(r), 20) for r in rows], (10, 10))
  fig = axes[0].figure

  # The input train S_x(t) drives the step that starts at t; the layers' spikes are emitted at
  # the end of steps, at times 1 .. t_total (trajectories.py).
  in_times = np.arange(t_total)
  free_times = np.arange(1, t_free + 1)
  nudged_times = np.arange(t_free + 1, t_total + 1)
  names = ["input"] + _layer_names(num_free)
  for panel, (ax, name, r) in enumerate(zip(axes, names, rows)):
    _mark_phases(ax, t_free, t_total, label=panel == 0)
    if panel == 0:
      _raster_rows(ax, in_times, s_in, r, -0.4, 0.4, FREE_COLOUR)
    else:
      l = panel - 1
      _raster_rows(ax, free_times, rec["free"]["spikes"][l], r, -0.4, 0.4, FREE_COLOUR)
      # Half-height ticks: thicker, so their colour stays readable.
      _raster_rows(ax, nudged_times, rec["nudged_plus"]["spikes"][l], r, 0.0, 0.45, PLUS_COLOUR,
                   1.6)
      _raster_rows(ax, nudged_times, rec["nudged_minus"]["spikes"][l], r, -0.45, 0.0,
                   MINUS_COLOUR, 1.6)
    ax.set_ylim(-0.7, len(r) - 0.3)
    total = s_in.shape[1] if panel == 0 else rec["free"]["spikes"][panel - 1].shape[1]
    what = "active pixels" if panel == 0 else "spiking neurons"
    shown = f"all {total}" if len(r) == total else f"{len(r)} of {total}, {what}"
    ax.set_ylabel(f"{name}\n({shown})", fontsize="small")
    if name == "output":
      ax.set_yticks(np.arange(len(r)), [str(c) for c in r], fontsize="x-small")
      if label is not None:
        ax.axhspan(label - 0.5, label + 0.5, color="gold", alpha=0.35, zorder=0, linewidth=0)
        ax.get_yticklabels()[label].set_fontweight("bold")
    else:
      ax.set_yticks([])
  axes[-1].set_xlabel("time step")
  handles = [lines.Line2D([], [], color=c, marker="|", linestyle="none", markersize=10,
                          markeredgewidth=1.5) for c in (FREE_COLOUR, PLUS_COLOUR, MINUS_COLOUR)]
  names = ["free (and input)", "nudged +β (upper half of a row)", "nudged −β (lower half)"]
  if label is not None:
    handles.append(patches.Patch(color="gold", alpha=0.35))
    names.append(f"target class ({label})")
  fig.legend(handles, names, loc="outside lower center", ncols=len(names), fontsize="small",
             frameon=False)
  if title:
    fig.suptitle(title)
  return fig


def _most_nudged(rec: dict, layer: int, k: int):
  """The ``k`` neurons of ``layer`` whose end states differ most between +beta and -beta.

  That difference is what the learning rule turns into a weight change, so these are the
  neurons through which the example teaches the network. Ties (all of them when the output
  already sits on its target and the nudge is 0) go to the neurons whose state varies most over
  time (neither silent nor saturated). Returns the neurons and whether the nudge moved any.
  """
  gap = np.abs(rec["nudged_plus"]["u"][layer][-1] - rec["nudged_minus"]["u"][layer][-1])
  spread = np.concatenate([rec[p]["u"][layer] for p in ("free", "nudged_plus", "nudged_minus")])
  spread = spread.std(0)
  order = np.lexsort((-spread, -gap))  # By gap, then spread, both descending.
  return np.sort(order[:k]), bool(gap.max() > 0)


def state_traces(rec: dict, axes=None, num_hidden: int = 8, label: Optional[int] = None,
                 title: Optional[str] = None) -> Figure:
  """States ``u(t)`` of hidden and output neurons through the free and both nudged phases.

  Each neuron keeps its colour: a solid line through the free phase and on through the ``+beta``
  phase, a dashed line through the ``-beta`` phase; both nudged phases start from the free end
  state. Hidden panels show the ``num_hidden`` neurons whose end states the two nudges pull apart
  most; the output panel shows every class.

  Args:
    rec: a ``trajectories.record``.
    axes: one axes per free layer (hidden..., output), sharing the time axis; new when None.
    num_hidden: neurons shown per hidden layer.
    label: the target class, whose output trace is drawn bold.
    title: the figure title.

  Returns:
    The figure.
  """
  rec = _as_numpy(rec)
  t_free, t_nudge = _phase_lengths(rec)
  t_total = t_free + t_nudge
  num_free = len(rec["free"]["u"])
  if axes is None:
    axes = _new_axes(num_free, [1.0] * num_free, (10, 3.2 * num_free + 0.6))
  fig = axes[0].figure
  free_times = np.arange(t_free + 1)
  nudged_times = np.arange(t_free, t_total + 1)
  for l, (ax, name) in enumerate(zip(axes, _layer_names(num_free))):
    _mark_phases(ax, t_free, t_total, label=l == 0)
    output = l == num_free - 1
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
  axes[-1].set_xlabel("time step")
  handles = [lines.Line2D([], [], color="0.3", linestyle=s) for s in ("-", "--")]
  fig.legend(handles, ["free, then nudged +β", "nudged −β"], loc="outside lower center",
             ncols=2, fontsize="small", frameon=False)
  if title:
    fig.suptitle(title)
  return fig


# ================================================================================================
# STDP (stdp.py).
# ================================================================================================


def stdp_window(windows: Mapping[str, tuple], ax=None, title: Optional[str] = None) -> Figure:
  """Weight change of an isolated synapse against ``t_post - t_pre``.

  Args:
    windows: label -> ``(dt, dW)`` (``stdp.isolated_window``), drawn in this order; a label
      containing "-beta" is drawn in the -beta colour, one starting with "free" (a synapse
      between two free neurons) grey and dashed.
    ax: the axes; a new figure when None.
    title: the axes title.
  """
  if ax is None:
    ax = panels(figsize=(8.0, 4.8))[0]
  for label, (dt, dw) in windows.items():
    free = label.startswith("free")
    colour = "0.55" if free else MINUS_COLOUR if "-beta" in label else PLUS_COLOUR
    ax.plot(np.asarray(dt), np.asarray(dw), color=colour, linestyle="--" if free else "-",
            marker="o", markersize=3 if free else 3.5, linewidth=1.1 if free else 1.8,
            label=label, zorder=2 if free else 3)
  ax.axhline(0.0, color="0.5", linewidth=0.8)
  ax.axvline(0.5, color="0.5", linewidth=0.8, linestyle=":")
  ax.set_xlabel("t_post − t_pre (steps)")
  ax.set_ylabel("weight change ΔW (learning rate 1)")
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize="small", frameon=False)
  if title:
    ax.set_title(title)
  return ax.figure


def in_vivo_window(lags: Sequence[int], changes: Mapping[str, Sequence[float]], ax=None,
                   title: Optional[str] = None) -> Figure:
  """Mean weight change per spike pair against ``t_post - t_pre`` (``stdp.in_vivo_window``).

  Args:
    lags: the lags, ``[n]``.
    changes: label -> change per pair ``[n]`` (e.g. ``stdp.symmetric_window``), drawn as
      grouped bars coloured by sign.
    ax: the axes; a new figure when None.
    title: the axes title.
  """
  if ax is None:
    ax = panels(figsize=(8.0, 4.8))[0]
  lags = np.asarray(lags)
  width = 0.8 / max(len(changes), 1)
  hatches = ("", "//", "..", "xx")
  for i, (label, change) in enumerate(changes.items()):
    change = np.asarray(change)
    colours = np.where(change > 0, PLUS_COLOUR, MINUS_COLOUR)
    ax.bar(lags + (i - (len(changes) - 1) / 2) * width, change, width=width, color=colours,
           edgecolor="0.2", linewidth=0.5, hatch=hatches[i % len(hatches)], label=label)
  ax.axhline(0.0, color="0.5", linewidth=0.8)
  ax.axvline(0.5, color="0.5", linewidth=0.8, linestyle=":")
  ax.set_xlabel("t_post − t_pre (steps)")
  ax.set_ylabel("weight change per spike pair")
  ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
  ax.grid(True, axis="y", alpha=0.3)
  if len(changes) > 1:
    ax.legend(fontsize="small", frameon=False)
  if title:
    ax.set_title(title, pad=12)
  return ax.figure


# ================================================================================================
# Energy (energy.py).
# ================================================================================================


def energy_bars(report: dict, ax=None, title: Optional[str] = None) -> Figure:
  """Energy per example, inference and training, of every chip profile and GPU scenario.

  Args:
    report: ``energy.build_report``'s output (``neuromorphic`` and ``gpu`` entries with
      ``inference`` / ``training`` ``total_pj``).
    ax: the axes; a new figure when None.
    title: the axes title.
  """
  if ax is None:
    ax = panels(figsize=(10.0, 5.2))[0]
  rows = [(f"{entry['name']}", entry, "chip") for entry in report["neuromorphic"].values()]
  rows += [(f"GPU {name}", entry, "gpu") for name, entry in report["gpu"].items()]
  x = np.arange(len(rows))
  for offset, phase, colour in ((-0.2, "inference", "tab:green"), (0.2, "training", "tab:purple")):
    # A GPU entry without a figure for a phase (e.g. measured for training only) stays empty.
    values = [entry[phase]["total_pj"] * 1e-6 if entry.get(phase) else np.nan
              for _, entry, _ in rows]
    bars = ax.bar(x + offset, values, width=0.4, color=colour, label=phase, edgecolor="0.2",
                  linewidth=0.5)
    for bar, value in zip(bars, values):
      if np.isnan(value):
        continue
      text = f"{value:.0f}" if value >= 100 else f"{value:.3g}"
      ax.annotate(text, (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom",
                  fontsize=6.5, rotation=90, xytext=(0, 2), textcoords="offset points")
  chips = sum(kind == "chip" for _, _, kind in rows)
  ax.axvline(chips - 0.5, color="0.4", linewidth=0.8, linestyle=":")
  ax.set_yscale("log")
  low, high = ax.get_ylim()
  ax.set_ylim(low, high * 4)  # Room for the labels above the tallest bars.
  ax.set_xticks(x, [label.replace("/", "\n") for label, _, _ in rows], fontsize=7.5)
  ax.set_ylabel("energy per example (µJ)")
  ax.grid(True, axis="y", alpha=0.3, which="both")
  ax.legend(fontsize="small", frameon=False)
  if title:
    ax.set_title(title)
  return ax.figure
