"""Fixtures shared by the tests: configs by file name, float64, MNIST on disk."""

import os
import shutil
import tempfile

import jax
import pytest

from eqspike_jax import config_lib
from eqspike_jax import data as data_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS_DIR = os.path.join(REPO_ROOT, "configs")
_CACHE_DIR = None


def pytest_configure(config):
  """Fresh caches per test run, shared by every process of the run: compiled programs and data.

  Every trainer run builds new jitted functions whose programs equal the previous run's, and
  compiling them costs more than running them; the cache compiles each program once. It is set
  before collection, so before anything compiles (JAX fixes its cache at the first compile), and
  through the environment, so the xdist workers and the subprocesses of the launcher, notebook,
  benchmark and multi-host tests share it (a program compiled by one is read by the others).
  The decoded-data cache (``data.CACHE_ENV``) is the run's own too, so every run reads the
  prepared sets through TFDS once and never trusts entries left by an earlier one.
  """
  del config
  global _CACHE_DIR
  if os.environ.get("JAX_COMPILATION_CACHE_DIR"):  # A worker of this run, or set by the caller.
    return
  _CACHE_DIR = tempfile.mkdtemp(prefix="eqspike_jax_test_cache_")
  compiled = os.path.join(_CACHE_DIR, "jax")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = compiled
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
  os.environ[data_lib.CACHE_ENV] = os.path.join(_CACHE_DIR, "data")
  jax.config.update("jax_compilation_cache_dir", compiled)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def pytest_unconfigure(config):
  del config
  if _CACHE_DIR:
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)


def load_config(name: str, variant: str = ""):
  """``configs/NAME.py[:variant]`` as ``--config`` reads it."""
  return config_lib.from_file(os.path.join(CONFIGS_DIR, f"{name}.py"), variant)


@pytest.fixture(name="load_config")
def load_config_fixture():
  return load_config


@pytest.fixture
def x64():
  """float64 for the duration of one test (the gradient checks need it); restored afterwards."""
  with jax.enable_x64(True):
    yield


def _prepared_data_dir(name: str) -> str:
  """The TFDS directory holding the prepared NAME; fails (never skips) when it is missing."""
  data_dir = data_lib.resolve_data_dir(None)
  if not os.path.isdir(os.path.join(data_dir, name)):
    pytest.fail(f"{name} is not prepared in {data_dir!r}: point TFDS_DATA_DIR at a TFDS directory "
                f"holding {name}/<version>/ (e.g. export TFDS_DATA_DIR=../shared/"
                f"tensorflow_datasets). The end-to-end tests need the real data.")
  return data_dir


@pytest.fixture(scope="session")
def mnist_data_dir() -> str:
  return _prepared_data_dir("mnist")


@pytest.fixture(scope="session")
def fashion_mnist_data_dir() -> str:
  return _prepared_data_dir("fashion_mnist")
