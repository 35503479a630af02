"""What the notebooks of ``colabs/`` call at run time (their runner, ``colabs/runner.py``, is
not part of the installed package)."""

import os
from typing import Sequence


def enter_repo_root() -> str:
  """Changes to the checkout's root (the folder of ``setup.cfg`` at or above the cwd).

  The notebooks name configs, runs and figure folders relative to the root, wherever Jupyter
  started them (``colabs/`` or the root).
  """
  root = os.getcwd()
  while not os.path.exists(os.path.join(root, "setup.cfg")):
    if os.path.dirname(root) == root:
      raise FileNotFoundError(f"no setup.cfg at or above {os.getcwd()}: start the notebook "
                              f"inside the eqspike-jax checkout.")
    root = os.path.dirname(root)
  os.chdir(root)
  return root


def check_figures(figure_dir: str, figures: Sequence[str]) -> None:
  """Fails unless a notebook wrote every figure it promises."""
  missing = [f for f in figures if not os.path.exists(os.path.join(figure_dir, f))]
  if missing:
    raise AssertionError(f"figures not written to {figure_dir}: {missing}")
