"""Tests of the notebooks in colabs/ and of the library code they draw with.

Every ``colabs/*.py`` notebook (a notebook added later is covered by the glob) must run top to
bottom on its quick settings and write the figures it lists in ``FIGURES``; its ``.ipynb`` pair
must be in sync, output-free and open in Colab from its badge. ``trajectories.record`` must show
exactly the free phase ``eqspike.free_phase`` runs, and nudged phases that leave from its end.
"""

import os

import jax
import jax.numpy as jnp
import jupytext
import nbformat
import numpy as np
import pytest

from eqspike_jax import eqspike
from eqspike_jax import network
from eqspike_jax import notebooks
from eqspike_jax import plots
from eqspike_jax import trajectories

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(os.path.join("colabs", name)
                   for name in os.listdir(os.path.join(REPO_ROOT, "colabs"))
                   if name.endswith(".py"))
BADGE = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
         "(https://colab.research.google.com/github/eqspike-jax/eqspike-jax/blob/main/{})")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Sizes distinct on purpose (time != width), two hidden layers so no code assumes one.
SIZES = (13, 9, 7, 5)
DETERMINISTIC = eqspike.SpikingDynamics(gamma=0.3, t_free=11, t_nudge=6)
STOCHASTIC = eqspike.SpikingDynamics(gamma=0.3, t_free=11, t_nudge=6, spike_mode="stochastic")

_jit_record = jax.jit(trajectories.record, static_argnames="dyn")
_jit_free_phase = jax.jit(eqspike.free_phase, static_argnames=("dyn", "num_steps"))


def _path(notebook):
  return os.path.join(REPO_ROOT, notebook)


# ================================================================================================
# The notebooks: they run, and their pairs are clean.
# ================================================================================================


def test_there_are_notebooks():
  assert NOTEBOOKS, "no colabs/*.py notebook found"


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_runs_quick_and_writes_its_figures(notebook, tmp_path, mnist_data_dir,
                                                   monkeypatch):
  path = _path(notebook)
  params = notebooks.param_names(notebooks.read(path))
  for name in ("QUICK", "FIGURE_DIR"):
    if name not in params:
      pytest.fail(f"{notebook} has no `{name} = ...  #@param` line: every notebook needs "
                  f"QUICK (a run in under a minute, what this test runs) and FIGURE_DIR (where "
                  f"its PNGs go). Its parameters are {params}.")
  figures = notebooks.declared_figures(path)
  assert figures, f"{notebook} lists no FIGURES"
  monkeypatch.setenv("TFDS_DATA_DIR", mnist_data_dir)  # The kernel inherits the environment.
  figure_dir = tmp_path / "figures"
  notebooks.execute(path, {"QUICK": True, "FIGURE_DIR": str(figure_dir)}, cwd=REPO_ROOT)
  for name in figures:
    png = figure_dir / name
    assert png.exists(), f"{notebook} did not write {name} (wrote {os.listdir(figure_dir)})"
    assert png.read_bytes()[:8] == PNG_MAGIC, f"{png} is not a PNG"


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_pair_is_in_sync_and_output_free(notebook):
  problems = notebooks.sync_problems(_path(notebook))
  assert not problems, "\n".join(problems)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_is_paired_and_opens_in_colab(notebook):
  nb = notebooks.read(_path(notebook))
  assert nb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
  first = nbformat.read(notebooks.ipynb_path(_path(notebook)), as_version=4).cells[0]
  assert first.cell_type == "markdown" and first.source.startswith("# "), (
      f"{notebook}: the first cell must be markdown starting with a title")
  badge = BADGE.format(notebooks.ipynb_path(notebook))
  assert badge in first.source, f"{notebook}: the first cell lacks the Colab badge {badge}"
  assert notebooks.param_names(nb), f"{notebook} has no `NAME = value  #@param` line"


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
  assert notebooks.param_names(nb) == ["QUICK", "DIR", "QUICK"]
  new = notebooks.override_params(nb, {"QUICK": True, "DIR": "/tmp/x y"})
  first, second = new.cells[0].source.splitlines(), new.cells[1].source.splitlines()
  assert first[0] == 'QUICK = True  #@param {type:"boolean"}'
  assert first[1] == 'DIR = \'/tmp/x y\'  # @param {type:"string"}'
  assert first[2:] == ["N = 3", 'FIGURES = ["a.png", "b.png"]  # Written below.']
  assert second == ["  QUICK = True  #@param"]
  assert nb.cells[0].source.startswith("QUICK = False"), "the input notebook was changed"


def test_override_params_names_an_unknown_parameter():
  nb = jupytext.reads(NOTEBOOK_TEXT, fmt="py:percent")
  with pytest.raises(KeyError, match=r"\['N', 'NOPE'\]"):
    notebooks.override_params(nb, {"N": 4, "NOPE": 1, "QUICK": True})


def test_declared_figures(tmp_path):
  path = tmp_path / "nb.py"
  path.write_text(NOTEBOOK_TEXT)
  assert notebooks.declared_figures(str(path)) == ["a.png", "b.png"]
  path.write_text("# %%\nX = 1  #@param\n")
  with pytest.raises(ValueError, match="FIGURES"):
    notebooks.declared_figures(str(path))


def test_sync_writes_a_clean_pair_and_the_check_sees_an_edit(tmp_path):
  path = tmp_path / "nb.py"
  path.write_text(NOTEBOOK_TEXT)
  assert notebooks.sync_problems(str(path))[0].endswith(f"--sync {path}")  # No .ipynb yet.
  notebooks.sync(str(path))
  assert notebooks.sync_problems(str(path)) == []
  path.write_text(NOTEBOOK_TEXT.replace("N = 3", "N = 4"))
  assert "from cell 0 on" in notebooks.sync_problems(str(path))[0]


# ================================================================================================
# trajectories.record.
# ================================================================================================


def _example(seed=0):
  k_p, k_x = jax.random.split(jax.random.PRNGKey(seed))
  params = network.init_params(k_p, SIZES, scale=2.0)
  x = jax.random.uniform(k_x, (SIZES[0],))
  y = jax.nn.one_hot(2, SIZES[-1])
  return params, x, y


@pytest.mark.parametrize("dyn", [DETERMINISTIC, STOCHASTIC], ids=["deterministic", "stochastic"])
def test_record_shapes(dyn):
  params, x, y = _example()
  rec = _jit_record(params, x, y, dyn=dyn, beta=0.5, key=jax.random.PRNGKey(3))
  assert rec["input_spikes"].shape == (dyn.t_free + dyn.t_nudge, SIZES[0])
  for phase, steps in (("free", dyn.t_free), ("nudged_plus", dyn.t_nudge),
                       ("nudged_minus", dyn.t_nudge)):
    assert [a.shape for a in rec[phase]["u"]] == [(steps + 1, n) for n in SIZES[1:]], phase
    assert [a.shape for a in rec[phase]["spikes"]] == [(steps, n) for n in SIZES[1:]], phase


@pytest.mark.parametrize("dyn", [DETERMINISTIC, STOCHASTIC], ids=["deterministic", "stochastic"])
def test_record_free_part_is_the_free_phase(dyn):
  params, x, y = _example()
  key = jax.random.PRNGKey(7)
  rec = _jit_record(params, x, y, dyn=dyn, beta=0.5, key=key)
  # free_phase's trace reports S(t), the spikes entering step t ("same_step" pairing).
  s_in, state, trace = _jit_free_phase(params, x[None], dyn=dyn, key=key)
  np.testing.assert_array_equal(rec["input_spikes"][:dyn.t_free], s_in[0])
  for l in range(len(SIZES) - 1):
    u, spikes = rec["free"]["u"][l], rec["free"]["spikes"][l]
    np.testing.assert_array_equal(u[:-1], trace.u[l][0])
    np.testing.assert_array_equal(u[-1], state[l].u[0])
    np.testing.assert_array_equal(spikes[:-1], trace.spikes[l][0][1:])
    np.testing.assert_array_equal(spikes[-1], state[l].spikes[0])
  assert float(jnp.sum(rec["free"]["spikes"][-1])) > 0, "a silent output tests nothing"


def test_record_nudged_phases_leave_from_the_free_end_and_continue_the_input():
  dyn = DETERMINISTIC
  params, x, y = _example()
  rec = _jit_record(params, x, y, dyn=dyn, beta=0.5, key=jax.random.PRNGKey(0))
  for l in range(len(SIZES) - 1):
    np.testing.assert_array_equal(rec["nudged_plus"]["u"][l][0], rec["free"]["u"][l][-1])
    np.testing.assert_array_equal(rec["nudged_minus"]["u"][l][0], rec["free"]["u"][l][-1])
  # One encoder over both phases: a fresh one would restart the trains at the nudge.
  np.testing.assert_array_equal(rec["input_spikes"],
                                eqspike.encode(x, dyn.t_free + dyn.t_nudge, False))
  # The nudge pulls the target's output up at +beta and down at -beta.
  out_plus, out_minus = rec["nudged_plus"]["u"][-1], rec["nudged_minus"]["u"][-1]
  assert out_plus[1, 2] > out_minus[1, 2]
  # At beta = 0 the two phases are one.
  rec0 = _jit_record(params, x, y, dyn=dyn, beta=0.0, key=jax.random.PRNGKey(0))
  jax.tree.map(np.testing.assert_array_equal, rec0["nudged_plus"], rec0["nudged_minus"])


# ================================================================================================
# plots: every figure draws and saves.
# ================================================================================================


def test_plots_draw_and_save(tmp_path):
  params, x, y = _example()
  rec = _jit_record(params, x, y, dyn=DETERMINISTIC, beta=0.5, key=jax.random.PRNGKey(0))
  raster = plots.spike_raster(rec, num_input=5, num_hidden=4, label=2, title="raster")
  assert len(raster.axes) == len(SIZES)  # Input, two hidden layers, output.
  traces = plots.state_traces(rec, num_hidden=3, label=2)
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
