"""Headline numbers over seeds: run summaries grouped per experiment, their mean and spread.

A group is the committed summaries (``workdir.make_summary``) of one config run with several
seeds. Its headline is the mean and sample standard deviation of the final test accuracies,
computed here from the files rather than typed into the docs; the settings that differ between
the runs besides the seed are listed, so a group that mixes configs says so.
"""

import glob
import json
import os
from typing import Dict, List, Mapping, Sequence

import ml_collections
import numpy as np


def load_group(patterns: Sequence[str], root: str = ".") -> Dict[str, dict]:
  """Summary path (relative to ``root``) -> summary, for every file the glob patterns match.

  A pattern that matches nothing is an error (a moved or missing result), as are two files of
  different configs or of the same seed.
  """
  summaries = {}
  for pattern in patterns:
    paths = sorted(glob.glob(os.path.join(root, pattern)))
    if not paths:
      raise FileNotFoundError(f"no run summary matches {pattern!r} under {os.path.abspath(root)!r}")
    for path in paths:
      with open(path) as f:
        summaries[os.path.relpath(path, root)] = json.load(f)
  names = {s["config_name"] for s in summaries.values()}
  if len(names) > 1:
    raise ValueError(f"one group holds runs of several configs {sorted(names)}: {list(summaries)}")
  seeds = [s["seed"] for s in summaries.values()]
  if len(set(seeds)) < len(seeds):
    raise ValueError(f"one group holds a seed twice (seeds {seeds}): {list(summaries)}")
  return summaries


def _flat(config: Mapping, prefix: str = "") -> Dict[str, object]:
  out = {}
  for key, value in config.items():
    if isinstance(value, Mapping):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = json.dumps(value, sort_keys=True)
  return out


def config_differences(summaries: Mapping[str, dict]) -> List[str]:
  """The config keys, besides the seed, whose values differ between the runs (sorted)."""
  flats = [_flat(s.get("config", {})) for s in summaries.values()]
  keys = set().union(*flats) - {"seed"} if flats else set()
  return sorted(k for k in keys if len({f.get(k) for f in flats}) > 1)


def spread(summaries: Mapping[str, dict]) -> dict:
  """Mean and sample std (ddof 1; 0 for one run) of the final test accuracies, as fractions."""
  if not summaries:
    raise ValueError("spread of an empty group")
  finals = np.asarray([s["test_accuracy_per_epoch"][-1] for s in summaries.values()], float)
  return {"n": int(finals.size), "mean": float(finals.mean()),
          "std": float(finals.std(ddof=1)) if finals.size > 1 else 0.0,
          "finals": finals.tolist(), "seeds": [s["seed"] for s in summaries.values()]}


def report(config: ml_collections.ConfigDict, root: str = ".") -> dict:
  """Every panel of ``config`` (configs/curves.py): its runs, spread, references and gaps."""
  panels = []
  for panel in config.panels:
    summaries = load_group(panel.runs, root)
    runs = {path: {"seed": s["seed"], "config": {"model": s.get("config", {}).get("model", "")},
                   "test_accuracy_per_epoch": s["test_accuracy_per_epoch"]}
            for path, s in summaries.items()}  # What the figure draws, not whole configs.
    panels.append({"title": panel.title, "runs": runs, "spread": spread(summaries),
                   "references": dict(panel.references),
                   "config_differences": config_differences(summaries)})
  return {"panels": panels}


def line(panel: dict) -> str:
  """One line for the log: the headline against the references."""
  s = panel["spread"]
  refs = ", ".join(f"{k} {100 * v:.2f} %" for k, v in panel["references"].items())
  differ = panel["config_differences"]
  mixed = f"; configs differ in {differ}" if differ else ""
  spread_text = f"+- {100 * s['std']:.2f} % over" if s["n"] > 1 else "%, no spread:"
  return (f"{panel['title']}: {100 * s['mean']:.2f} {spread_text} seeds {s['seeds']} "
          f"({', '.join(f'{100 * f:.2f}' for f in s['finals'])}); {refs}{mixed}")
