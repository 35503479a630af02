"""Figures of the notebooks: training curves, STDP windows and energy bars.

Every function takes data (run summaries, analysis results) and optionally the axes to draw on,
and returns the figure. Figures are ``matplotlib.figure.Figure`` objects made without
pyplot, so nothing is kept in pyplot's global list of open figures and nothing depends on the
backend; ``save`` writes them as PNG. The spike rasters and state traces of one example are in
``raster_plots``.
"""

import os
from typing import Mapping, Optional, Sequence

import matplotlib
from matplotlib import ticker
from matplotlib.figure import Figure
import numpy as np

PAPER_ACCURACY = 0.976  # EqSpike on MNIST, the paper's abstract (EQSPIKE.md).

# One colour family per model, so the variants of a model read as a group.
_MODEL_COLOURS = {"eqspike": "Blues", "rate_ep": "Oranges"}
_LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
_REFERENCE_COLOURS = ("tab:green", "tab:purple", "tab:brown", "tab:gray")
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
                    title: Optional[str] = None,
                    references: Optional[Mapping[str, float]] = None) -> Figure:
  """Test accuracy per epoch of several runs, with the paper's accuracy as a reference line.

  Args:
    summaries: label -> run summary (``workdir.make_summary``: ``test_accuracy_per_epoch`` and
      ``config.model``), drawn in this order.
    ax: the axes to draw on; a new figure when None.
    paper_accuracy: the reference line (a fraction); None for none.
    highlight: labels drawn bold with markers, the others thin; None highlights every run.
    title: the axes title.
    references: label -> accuracy (a fraction), more reference lines (a published anchor, a
      target), each in its own style.

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
  for i, (label, accuracy) in enumerate((references or {}).items()):
    ax.axhline(100.0 * accuracy, color=_REFERENCE_COLOURS[i % len(_REFERENCE_COLOURS)],
               linestyle=_LINESTYLES[(i + 1) % len(_LINESTYLES)], linewidth=1.3,
               label=f"{label} ({100 * accuracy:.2f} %)", zorder=1)
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


def _headline(spread: dict) -> str:
  if spread["n"] == 1:
    return f"{100 * spread['mean']:.2f} % (one seed: no spread yet)"
  return f"{100 * spread['mean']:.2f} ± {100 * spread['std']:.2f} % ({spread['n']} seeds)"


def seed_panels(report: dict, ncols: int = 3) -> Figure:
  """One panel per group of ``analysis.seeds.report``: each seed's curve and the references."""
  groups = report["panels"]
  nrows = -(-len(groups) // ncols)
  axes = panels(nrows, min(ncols, len(groups)), figsize=(5.0 * min(ncols, len(groups)),
                                                         4.6 * nrows))
  for ax, group in zip(axes, groups):
    s = group["spread"]
    runs = {f"seed {run['seed']}": run for run in group["runs"].values()}
    training_curves(runs, ax=ax, paper_accuracy=None, references=group["references"],
                    title=f"{group['title']}\n{_headline(s)}")
  for ax in axes[len(groups):]:
    ax.set_visible(False)
  return axes[0].figure


# ================================================================================================
# STDP (analysis/stdp.py).
# ================================================================================================


def stdp_window(windows: Mapping[str, tuple], ax=None, title: Optional[str] = None) -> Figure:
  """Weight change of an isolated synapse against ``t_post - t_pre``.

  Args:
    windows: label -> ``(dt, dW)`` (``analysis.stdp.isolated_window``), drawn in this order; a
      label containing "-beta" is drawn in the -beta colour, one starting with "free" (a
      synapse between two free neurons) grey and dashed.
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
    changes: label -> change per pair ``[n]`` (e.g. ``analysis.stdp.symmetric_window``), drawn
      as grouped bars coloured by sign.
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
# Energy (analysis/energy_report.py).
# ================================================================================================


def energy_bars(report: dict, ax=None, title: Optional[str] = None) -> Figure:
  """Energy per example, inference and training, of every chip profile and GPU scenario.

  Args:
    report: ``analysis.energy_report.build_report``'s output (``neuromorphic`` and ``gpu``
      entries with ``inference`` / ``training`` ``total_pj``).
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


# ================================================================================================
# Memory against time steps.
# ================================================================================================


def memory_vs_steps(report: dict, ax=None, title: Optional[str] = None) -> Figure:
  """Temporary memory per example of one compiled training step against the free phase's T."""
  if ax is None:
    ax = panels(1, 1, figsize=(6.0, 4.0))[0]
  for i, (name, rows) in enumerate(report["variants"].items()):
    steps = [r["t_free"] for r in rows]
    mb = [r["temp_bytes_per_example"] / 1e6 for r in rows]
    ax.plot(steps, mb, marker="o", linestyle=_LINESTYLES[i % len(_LINESTYLES)],
            label=name.replace("_", ", "))
  ax.set_xlabel("free-phase steps T")
  ax.set_ylabel("MB per example (XLA temporaries)")
  ax.set_title(title or f"Training memory, batch {report['batch_size']}")
  ax.legend()
  return ax.figure
