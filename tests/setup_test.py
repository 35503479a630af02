"""The declared dependency ranges are the ones CI installs and runs.

A lower bound that CI never runs is a claim nobody tested: setup.cfg once declared jax>=0.4.30
while the code calls jax.shard_map(check_vma=) and jax.make_mesh(axis_types=), which only much
newer releases have.
"""

import configparser
import importlib.metadata
import os

from packaging.requirements import Requirement
from packaging.version import Version

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The packages whose APIs the code depends on release by release: CI must run their lowest
# declared release series.
API_SENSITIVE = ("jax", "flax", "optax", "chex", "orbax-checkpoint", "tensorflow-cpu")


def _requirements(section, key):
  parser = configparser.ConfigParser()
  parser.read(os.path.join(REPO_ROOT, "setup.cfg"))
  lines = parser[section][key].splitlines()
  return [Requirement(l.strip()) for l in lines if l.strip() and not l.strip().startswith("#")]


def _all_requirements():
  reqs = _requirements("options", "install_requires")
  for extra in ("test", "notebooks"):
    reqs += _requirements("options.extras_require", extra)
  return reqs


def test_installed_versions_are_inside_the_declared_ranges():
  for req in _all_requirements():
    installed = importlib.metadata.version(req.name)
    assert req.specifier.contains(installed, prereleases=True), (str(req), installed)


def test_the_lowest_declared_release_is_the_one_ci_runs():
  for req in _requirements("options", "install_requires"):
    if req.name not in API_SENSITIVE:
      continue
    lower = [Version(s.version) for s in req.specifier if s.operator == ">="]
    assert lower, f"{req}: declare a lower bound"
    installed = Version(importlib.metadata.version(req.name))
    assert lower[0].release[:2] == installed.release[:2], (
        f"{req} declares {lower[0]} but CI runs {installed}: raise the lower bound to the "
        f"release series CI installs")


def test_the_download_path_dependencies_are_installed():
  """tensorflow-datasets imports importlib_resources to download without declaring it."""
  importlib.metadata.version("importlib_resources")
  import importlib_resources  # pylint: disable=g-import-not-at-top
  assert importlib_resources.files("tensorflow_datasets")
