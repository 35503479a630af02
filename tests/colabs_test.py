"""Tests of the notebooks in colabs/, of their runner and of the library code they draw with.

Every ``colabs/*.py`` notebook (a notebook added later is covered by the listing) must run top
to bottom on its quick settings and write the figures it lists in ``FIGURES``; its ``.ipynb``
pair must be in sync, output-free and open in Colab from its badge. ``trajectories.record`` must
show exactly the free phase ``eqspike.free_phase`` runs, and nudged phases that leave from its
end.
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import jupytext
import nbformat
import numpy as np
import pytest

from eqspike_jax import ep_core
from eqspike_jax import layers
from eqspike_jax import notebook_utils
from eqspike_jax import plots
from eqspike_jax import raster_plots
from eqspike_jax import spike_rule
from eqspike_jax import spiking
from eqspike_jax.analysis import trajectories
from eqspike_jax.models import eqspike

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The runner is a tool of the checkout, not of the installed package: import it from the root.
sys.path.insert(0, REPO_ROOT)
from colabs import runner  # pylint: disable=g-import-not-at-top,wrong-import-position

NOTEBOOKS = [os.path.relpath(p, REPO_ROOT) for p in runner.notebook_paths(
    os.path.join(REPO_ROOT, "colabs"))]
BADGE = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
         "(https://colab.research.google.com/github/eqspike-jax/eqspike-jax/blob/main/{})")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Sizes distinct on purpose (time != width), two hidden layers so no code assumes one.
SIZES = (13, 9, 7, 5)
ARCH = layers.dense_stack(SIZES)


def _model(spike_mode="deterministic", beta=0.5):
  return eqspike.Model(
      arch=ARCH, dyn=spiking.SpikingDynamics(gamma=0.3, t_free=11, t_nudge=6,
                                             spike_mode=spike_mode),
      rule=spike_rule.Rule(), nudging=ep_core.Nudging("symmetric", beta),
      readout=eqspike.Readout())


DETERMINISTIC, STOCHASTIC = _model(), _model("stochastic")

_jit_record = jax.jit(trajectories.record, static_argnums=0)
_jit_free_phase = jax.jit(eqspike.free_phase, static_argnums=(0, 3))


def _path(notebook):
  return os.path.join(REPO_ROOT, notebook)


# ================================================================================================
# The notebooks: they run, and their pairs are clean.
# ================================================================================================


def test_there_are_notebooks():
  assert NOTEBOOKS, "no colabs/*.py notebook found"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_runs_quick_and_writes_its_figures(notebook, tmp_path, mnist_data_dir,
                                                   monkeypatch):
  path = _path(notebook)
  params = runner.param_names(runner.read(path))
  for name in ("QUICK", "FIGURE_DIR"):
    if name not in params:
      pytest.fail(f"{notebook} has no `{name} = ...  #@param` line: every notebook needs "
                  f"QUICK (a run in under a minute, what this test runs) and FIGURE_DIR (where "
                  f"its PNGs go). Its parameters are {params}.")
  figures = runner.declared_figures(path)
  assert figures, f"{notebook} lists no FIGURES"
  monkeypatch.setenv("TFDS_DATA_DIR", mnist_data_dir)  # The kernel inherits the environment.
  figure_dir = tmp_path / "figures"
  runner.execute(path, {"QUICK": True, "FIGURE_DIR": str(figure_dir)}, cwd=REPO_ROOT)
  for name in figures:
    png = figure_dir / name
    assert png.exists(), f"{notebook} did not write {name} (wrote {os.listdir(figure_dir)})"
    assert png.read_bytes()[:8] == PNG_MAGIC, f"{png} is not a PNG"


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_pair_is_in_sync_and_output_free(notebook):
  problems = runner.sync_problems(_path(notebook))
  assert not problems, "\n".join(problems)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_is_paired_and_opens_in_colab(notebook):
  nb = runner.read(_path(notebook))
  assert nb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
  first = nbformat.read(runner.ipynb_path(_path(notebook)), as_version=4).cells[0]
  assert first.cell_type == "markdown" and first.source.startswith("# "), (
      f"{notebook}: the first cell must be markdown starting with a title")
  badge = BADGE.format(runner.ipynb_path(notebook))
  assert badge in first.source, f"{notebook}: the first cell lacks the Colab badge {badge}"
  assert runner.param_names(nb), f"{notebook} has no `NAME = value  #@param` line"


# ================================================================================================
# The runner: parameter overrides and declared figures.
# ================================================================================================


NOTEBOOK_TEXT = '''# %%
QUICK = False  #@param {type:"boolean"}
DIR = "a # b"  # @param {type:"string"}
N = 3
FIGURES = ["a.png", "b.png"]  # Written below.

# %%
  QUICK = False  #@param
'''


def test_override_params_rewrites_values_and_keeps_the_forms():
  nb = jupytext.reads(NOTEBOOK_TEXT, fmt="py:percent")
  assert runner.param_names(nb) == ["QUICK", "DIR", "QUICK"]
  new = runner.override_params(nb, {"QUICK": True, "DIR": "/tmp/x y"})
  first, second = new.cells[0].source.splitlines(), new.cells[1].source.splitlines()
  assert first[0] == 'QUICK = True  #@param {type:"boolean"}'
  assert first[1] == 'DIR = \'/tmp/x y\'  # @param {type:"string"}'
  assert first[2:] == ["N = 3", 'FIGURES = ["a.png", "b.png"]  # Written below.']
  assert second == ["  QUICK = True  #@param"]
  assert nb.cells[0].source.startswith("QUICK = False"), "the input notebook was changed"


def test_override_params_names_an_unknown_parameter():
  nb = jupytext.reads(NOTEBOOK_TEXT, fmt="py:percent")
  with pytest.raises(KeyError, match=r"\['N', 'NOPE'\]"):
    runner.override_params(nb, {"N": 4, "NOPE": 1, "QUICK": True})


def test_declared_figures(tmp_path):
  path = tmp_path / "nb.py"
  path.write_text(NOTEBOOK_TEXT)
  assert runner.declared_figures(str(path)) == ["a.png", "b.png"]
  path.write_text("# %%\nX = 1  #@param\n")
  with pytest.raises(ValueError, match="FIGURES"):
    runner.declared_figures(str(path))


def test_sync_writes_a_clean_pair_and_the_check_sees_an_edit(tmp_path):
  path = tmp_path / "nb.py"
  path.write_text(NOTEBOOK_TEXT)
  assert runner.sync_problems(str(path))[0].endswith(f"--sync {path}")  # No .ipynb yet.
  runner.sync(str(path))
  assert runner.sync_problems(str(path)) == []
  path.write_text(NOTEBOOK_TEXT.replace("N = 3", "N = 4"))
  assert "from cell 0 on" in runner.sync_problems(str(path))[0]
  # A new sync keeps the cell ids, so the .ipynb's diff shows only the cells that changed.
  ids = [c.id for c in nbformat.read(runner.ipynb_path(str(path)), as_version=4).cells]
  runner.sync(str(path))
  assert runner.sync_problems(str(path)) == []
  assert [c.id for c in nbformat.read(runner.ipynb_path(str(path)),
                                      as_version=4).cells] == ids


# ================================================================================================
# trajectories.record.
# ================================================================================================


def _example(seed=0):
  k_p, k_x = jax.random.split(jax.random.PRNGKey(seed))
  params = layers.init_params(ARCH, k_p, scale=2.0)
  x = jax.random.uniform(k_x, (SIZES[0],))
  y = jax.nn.one_hot(2, SIZES[-1])
  return params, x, y


@pytest.mark.slow
@pytest.mark.parametrize("model", [DETERMINISTIC, STOCHASTIC], ids=["deterministic", "stochastic"])
def test_record_shapes(model):
  params, x, y = _example()
  dyn = model.dyn
  rec = _jit_record(model, params, x, y, jax.random.PRNGKey(3))
  assert rec["input_spikes"].shape == (dyn.t_free + dyn.t_nudge, SIZES[0])
  for phase, steps in (("free", dyn.t_free), ("nudged_plus", dyn.t_nudge),
                       ("nudged_minus", dyn.t_nudge)):
    assert [a.shape for a in rec[phase]["u"]] == [(steps + 1, n) for n in SIZES[1:]], phase
    assert [a.shape for a in rec[phase]["spikes"]] == [(steps, n) for n in SIZES[1:]], phase


@pytest.mark.slow
@pytest.mark.parametrize("model", [DETERMINISTIC, STOCHASTIC], ids=["deterministic", "stochastic"])
def test_record_free_part_is_the_free_phase(model):
  params, x, y = _example()
  key, dyn = jax.random.PRNGKey(7), model.dyn
  rec = _jit_record(model, params, x, y, key)
  free = _jit_free_phase(ARCH, params, x[None], dyn, key)
  np.testing.assert_array_equal(rec["input_spikes"][:dyn.t_free], free.s_in[0])
  for l in range(len(SIZES) - 1):
    u, spikes = rec["free"]["u"][l], rec["free"]["spikes"][l]
    np.testing.assert_array_equal(u[:-1], free.trace.u[l][0])
    np.testing.assert_array_equal(u[-1], free.state[l].u[0])
    # The record shows the spikes each step emits: those the next step receives, and at the
    # end those the state holds (time alignment checked against the other two records).
    np.testing.assert_array_equal(spikes[:-1], free.trace.received[l][0][1:])
    np.testing.assert_array_equal(spikes[-1], free.state[l].spikes[0])
  assert float(jnp.sum(rec["free"]["spikes"][-1])) > 0, "a silent output tests nothing"


def test_record_nudged_phases_leave_from_the_free_end_and_continue_the_input():
  model = DETERMINISTIC
  dyn = model.dyn
  params, x, y = _example()
  rec = _jit_record(model, params, x, y, jax.random.PRNGKey(0))
  for l in range(len(SIZES) - 1):
    np.testing.assert_array_equal(rec["nudged_plus"]["u"][l][0], rec["free"]["u"][l][-1])
    np.testing.assert_array_equal(rec["nudged_minus"]["u"][l][0], rec["free"]["u"][l][-1])
  # One encoder over both phases: a fresh one would restart the trains at the nudge.
  np.testing.assert_array_equal(rec["input_spikes"],
                                spiking.encode(x, dyn.t_free + dyn.t_nudge, False)[1])
  # The nudge pulls the target's output up at +beta and down at -beta.
  out_plus, out_minus = rec["nudged_plus"]["u"][-1], rec["nudged_minus"]["u"][-1]
  assert out_plus[1, 2] > out_minus[1, 2]
  # At beta = 0 the two phases are one.
  rec0 = _jit_record(_model(beta=0.0), params, x, y, jax.random.PRNGKey(0))
  jax.tree.map(np.testing.assert_array_equal, rec0["nudged_plus"], rec0["nudged_minus"])


# ================================================================================================
# plots: every figure draws and saves.
# ================================================================================================


def test_plots_draw_and_save(tmp_path):
  params, x, y = _example()
  rec = _jit_record(DETERMINISTIC, params, x, y, jax.random.PRNGKey(0))
  raster = raster_plots.spike_raster(rec, num_input=5, num_hidden=4, label=2, title="raster")
  assert len(raster.axes) == len(SIZES)  # Input, two hidden layers, output.
  traces = raster_plots.state_traces(rec, num_hidden=3, label=2)
  assert len(traces.axes) == len(SIZES) - 1
  summaries = {"a": {"config": {"model": "eqspike"}, "test_accuracy_per_epoch": [0.9, 0.95]},
               "b": {"config": {"model": "rate_ep"}, "test_accuracy_per_epoch": [0.8, 0.9, 0.97]}}
  curves = plots.training_curves(summaries, highlight=["a"])
  ax = curves.axes[0]
  assert len(ax.lines) == 3  # Two runs and the paper's line.
  np.testing.assert_allclose(ax.lines[-1].get_ydata(), [97.6, 97.6])
  for name, fig in (("raster", raster), ("traces", traces), ("curves", curves)):
    path = plots.save(fig, str(tmp_path / "new" / f"{name}.png"))
    assert open(path, "rb").read(8) == PNG_MAGIC


# ================================================================================================
# What the notebooks call at run time, and the runner from the command line.
# ================================================================================================


def test_enter_repo_root_finds_the_checkout_from_colabs(monkeypatch):
  monkeypatch.chdir(os.path.join(REPO_ROOT, "colabs"))
  assert notebook_utils.enter_repo_root() == REPO_ROOT
  assert os.getcwd() == REPO_ROOT


def test_check_figures_names_what_is_missing(tmp_path):
  (tmp_path / "a.png").write_bytes(PNG_MAGIC)
  notebook_utils.check_figures(str(tmp_path), ["a.png"])
  with pytest.raises(AssertionError, match="b.png"):
    notebook_utils.check_figures(str(tmp_path), ["a.png", "b.png"])


def test_runner_checks_the_pairs_from_the_root_and_skips_itself():
  result = subprocess.run([sys.executable, "-m", "colabs.runner", "--check",
                           *sorted(os.path.join("colabs", n) for n in os.listdir(
                               os.path.join(REPO_ROOT, "colabs")) if n.endswith(".py"))],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stdout + result.stderr
  assert "skipped colabs/runner.py: not a notebook" in result.stdout
  for notebook in NOTEBOOKS:
    assert f"{notebook}: in sync" in result.stdout


def test_colabs_is_not_shipped_with_the_package():
  # The installed package has what the notebooks need at run time, not their runner.
  import setuptools  # pylint: disable=g-import-not-at-top
  packages = setuptools.find_packages(REPO_ROOT, include=["eqspike_jax", "eqspike_jax.*"])
  assert "eqspike_jax" in packages
  assert not [p for p in packages if not p.startswith("eqspike_jax")], packages
  assert not os.path.exists(os.path.join(REPO_ROOT, "eqspike_jax", "notebooks.py"))
