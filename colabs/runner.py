r"""Runs and pairs the notebooks of ``colabs/``: jupytext percent-format ``.py`` files.

The ``.py`` file is the source of truth; its paired ``.ipynb`` (what Colab opens) holds the same
cells and no outputs. A notebook's knobs are lines ``NAME = value  #@param ...`` (Colab forms);
``execute`` replaces their values before running, so tests run every notebook on quick settings.
From the repository root:

  python -m colabs.runner colabs/*.py                # run at full settings: the figures
  python -m colabs.runner -p QUICK=True colabs/*.py  # run with parameters overridden
  python -m colabs.runner --sync colabs/*.py         # rewrite the .ipynb pairs
  python -m colabs.runner --check colabs/*.py        # fail unless every pair is in sync

The runner is a tool of the checkout, not of the installed package: the notebooks themselves
need only ``eqspike_jax.notebook_utils`` at run time. ``colabs/*.py`` also matches this file and
the package's ``__init__.py``; they are not notebooks and are skipped (``NOT_NOTEBOOKS``).
"""

import argparse
import ast
import os
import re
import sys
import time
from typing import Any, List, Mapping, Optional, Sequence

import jupytext
import nbclient
import nbformat

CELL_TIMEOUT_S = 600
KERNEL = "python3"  # jupyter_client starts it with this Python (sys.executable).

# ``NAME = value  #@param ...``: the value is everything before the ``#@param`` comment.
_PARAM = re.compile(r"^(?P<head>\s*(?P<name>[A-Za-z_]\w*)\s*=\s*)(?P<value>.*?)"
                    r"(?P<tail>\s*#\s*@param\b.*)$")
_FIGURES = re.compile(r"^FIGURES\s*=\s*(?P<value>\[.*\])\s*(#.*)?$", re.MULTILINE)
# The Python files of colabs/ that are not notebooks.
NOT_NOTEBOOKS = ("__init__.py", "runner.py")


def is_notebook(path: str) -> bool:
  """False for the runner's own files, which ``colabs/*.py`` matches too."""
  return os.path.basename(path) not in NOT_NOTEBOOKS


def notebook_paths(folder: str) -> List[str]:
  """The jupytext notebooks in ``folder`` (``colabs/``): every ``.py`` but the runner's, sorted."""
  return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                if name.endswith(".py") and is_notebook(name))


def read(path: str) -> nbformat.NotebookNode:
  """The notebook of a jupytext ``.py`` (or an ``.ipynb``)."""
  return jupytext.read(path)


def param_names(nb: nbformat.NotebookNode) -> List[str]:
  """The names of the notebook's ``#@param`` lines, in order."""
  return [m.group("name") for cell in nb.cells if cell.cell_type == "code"
          for m in map(_PARAM.match, cell.source.splitlines()) if m]


def override_params(nb: nbformat.NotebookNode, params: Mapping[str, Any]) -> nbformat.NotebookNode:
  """A copy of ``nb`` whose ``NAME = value  #@param`` lines hold ``repr(params[NAME])``.

  Every such line of a name is rewritten; the ``#@param`` comment stays, so Colab still shows
  the form. Raises ``KeyError`` naming the parameters the notebook does not have.
  """
  missing = sorted(set(params) - set(param_names(nb)))
  if missing:
    raise KeyError(f"no parameter line `NAME = value  #@param ...` for {missing} in the "
                   f"notebook; its parameters are {param_names(nb)}.")
  nb = nbformat.from_dict(nb)  # A deep copy: the caller's notebook stays as it was.

  def rewrite(line):
    m = _PARAM.match(line)
    if not m or m.group("name") not in params:
      return line
    return m.group("head") + repr(params[m.group("name")]) + m.group("tail")

  for cell in nb.cells:
    if cell.cell_type == "code":
      cell.source = "\n".join(rewrite(line) for line in cell.source.split("\n"))
  return nb


def execute(path: str, params: Optional[Mapping[str, Any]] = None,
            cwd: Optional[str] = None) -> nbformat.NotebookNode:
  """Runs the notebook at ``path`` top to bottom with ``params`` overridden; returns it run.

  Args:
    path: a jupytext ``.py`` notebook (or an ``.ipynb``).
    params: parameter name -> value (see ``override_params``).
    cwd: the kernel's working directory; the current one when None.

  Raises:
    KeyError: a name in ``params`` has no ``#@param`` line.
    nbclient.exceptions.CellExecutionError: a cell failed (its traceback is in the message).
  """
  nb = override_params(read(path), params or {})
  client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name=KERNEL,
                                   resources={"metadata": {"path": cwd or os.getcwd()}})
  client.execute()
  return nb


# ================================================================================================
# Pairs: the .py and its .ipynb.
# ================================================================================================


def ipynb_path(path: str) -> str:
  return os.path.splitext(path)[0] + ".ipynb"


def _unexecuted(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
  """``nb`` with no outputs or execution counts."""
  nb = nbformat.from_dict(nb)
  for cell in nb.cells:
    if cell.cell_type == "code":
      cell.outputs, cell.execution_count = [], None
  return nb


def sync(path: str) -> str:
  """Writes the ``.ipynb`` paired with the ``.py`` at ``path``, outputs stripped; returns it.

  Cells keep the ids the existing ``.ipynb`` gave them, position by position, so a sync changes
  only the cells that changed.
  """
  out = ipynb_path(path)
  nb = _unexecuted(read(path))
  if os.path.exists(out):
    old = nbformat.read(out, as_version=4).cells
    for cell, old_cell in zip(nb.cells, old):
      if "id" in old_cell:
        cell["id"] = old_cell["id"]
  jupytext.write(nb, out, fmt="ipynb")
  return out


def sync_problems(path: str) -> List[str]:
  """Why the ``.py`` at ``path`` and its ``.ipynb`` are not a clean pair; empty when they are."""
  out = ipynb_path(path)
  if not os.path.exists(out):
    return [f"{out} is missing: run python -m colabs.runner --sync {path}"]
  py, ipynb = read(path), nbformat.read(out, as_version=4)
  problems = []
  for i, cell in enumerate(ipynb.cells):
    if cell.get("outputs") or cell.get("execution_count") is not None:
      problems.append(f"{out}: cell {i} has outputs or an execution count (strip them)")
  kinds = lambda nb: [(c.cell_type, c.source) for c in nb.cells]
  if kinds(py) != kinds(ipynb):
    diff = next((i for i, (a, b) in enumerate(zip(kinds(py), kinds(ipynb))) if a != b),
                min(len(py.cells), len(ipynb.cells)))
    problems.append(f"{out} differs from {path} from cell {diff} on ({len(py.cells)} cells "
                    f"against {len(ipynb.cells)}): edit the .py and run python -m "
                    f"colabs.runner --sync {path}")
  return problems


def declared_figures(path: str) -> List[str]:
  """The file names a notebook promises to write: its line ``FIGURES = [...]``."""
  with open(path) as f:
    m = _FIGURES.search(f.read())
  if not m:
    raise ValueError(f"{path} has no line `FIGURES = [...]` listing the PNG files it writes.")
  return list(ast.literal_eval(m.group("value")))


# ================================================================================================
# Command line.
# ================================================================================================


def _parse_param(text: str):
  name, sep, value = text.partition("=")
  if not sep:
    raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
  try:
    return name.strip(), ast.literal_eval(value)
  except (ValueError, SyntaxError):
    return name.strip(), value  # A bare word is a string.


def main(argv: Sequence[str]) -> int:
  parser = argparse.ArgumentParser(prog="python -m colabs.runner",
                                   description=__doc__.split("\n")[0])
  parser.add_argument("paths", nargs="+", help="jupytext .py notebooks")
  parser.add_argument("-p", "--param", action="append", type=_parse_param, default=[],
                      metavar="NAME=VALUE", help="override a #@param line (Python literal)")
  mode = parser.add_mutually_exclusive_group()
  mode.add_argument("--sync", action="store_true", help="write the .ipynb pairs, do not run")
  mode.add_argument("--check", action="store_true", help="check the pairs, do not run")
  args = parser.parse_args(argv)
  failed = 0
  for path in args.paths:
    if not is_notebook(path):
      print(f"skipped {path}: not a notebook")
      continue
    if args.sync:
      print(f"wrote {sync(path)}")
    elif args.check:
      problems = sync_problems(path)
      failed += bool(problems)
      print("\n".join(problems) or f"{path}: in sync")
    else:
      start = time.time()
      execute(path, dict(args.param))
      print(f"ran {path} in {time.time() - start:.0f} s")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
