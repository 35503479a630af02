"""The shape the library keeps: small modules and functions, one place that dispatches.

``config.nudging`` and ``config.model`` are read through ``ep_core.Nudging`` and ``registry``;
a string comparison of either anywhere else is how a second copy of the plumbing starts.
"""

import ast
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO_ROOT, "eqspike_jax")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# Where nudging modes and model names may be compared as strings.
DISPATCHERS = {"ep_core.py", "config_lib.py", "registry.py"}
SCANNED = ("eqspike_jax", "launch", "benchmarks", "colabs")


def _python_files(*roots):
  for root in roots:
    for folder, _, names in os.walk(os.path.join(REPO_ROOT, root)):
      for name in sorted(names):
        if name.endswith(".py"):
          yield os.path.join(folder, name)


def _tree(path):
  with open(path) as f:
    return ast.parse(f.read(), path)


def test_no_library_module_is_over_the_limit():
  long = {}
  for path in _python_files("eqspike_jax"):
    with open(path) as f:
      n = len(f.read().splitlines())
    if n > MAX_MODULE_LINES:
      long[os.path.relpath(path, REPO_ROOT)] = n
  assert not long, long


def test_no_library_function_is_over_the_limit():
  long = {}
  for path in _python_files("eqspike_jax"):
    for node in ast.walk(_tree(path)):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        n = node.end_lineno - node.lineno + 1
        if n > MAX_FUNCTION_LINES:
          long[f"{os.path.relpath(path, REPO_ROOT)}:{node.name}"] = n
  assert not long, long


def _compares_field_to_string(node, fields):
  if not isinstance(node, ast.Compare):
    return False
  sides = [node.left, *node.comparators]
  names = {s.attr for s in sides if isinstance(s, ast.Attribute)}
  names |= {s.slice.value for s in sides if isinstance(s, ast.Subscript)
            and isinstance(s.slice, ast.Constant)}
  strings = any(isinstance(s, ast.Constant) and isinstance(s.value, str) for s in sides)
  return bool(names & fields) and strings


def test_nudging_and_model_are_compared_only_in_the_core_and_the_registry():
  found = []
  for path in _python_files(*SCANNED):
    if os.path.basename(path) in DISPATCHERS and path.startswith(PACKAGE):
      continue
    for node in ast.walk(_tree(path)):
      if _compares_field_to_string(node, {"nudging", "model", "mode"}):
        found.append(f"{os.path.relpath(path, REPO_ROOT)}:{node.lineno}")
  assert not found, found


def test_the_checker_sees_a_comparison():
  """The structural check above can fail: it finds the comparisons it is meant to find."""
  for source in ("config.nudging == 'symmetric'", "c['model'] != 'eqspike'",
                 "'rate_ep' == cfg.model"):
    assert _compares_field_to_string(ast.parse(source, mode="eval").body,
                                     {"nudging", "model"}), source
  assert not _compares_field_to_string(ast.parse("config.beta == 0.5", mode="eval").body,
                                       {"nudging", "model"})


# Outputs the docs name that no committed run has written yet, each with why.
NOT_YET_WRITTEN = {
    "results/gpu_energy.json": "measured only on a GPU; no session has been lent one yet",
}
SUMMARY_FIELDS = ("config_name", "command", "git_sha", "seed", "test_accuracy_per_epoch",
                  "wall_time_s", "samples_per_s")


def _cited_results():
  """Every ``results/...`` file the README, the configs and the entry points name."""
  import re  # pylint: disable=g-import-not-at-top
  cited = {}
  docs = [os.path.join(REPO_ROOT, "README.md")] + list(
      _python_files("configs", "launch", "benchmarks", "colabs"))
  for path in docs:
    with open(path) as f:
      for pattern in re.findall(r"results/[A-Za-z0-9_./{},-]+?\.(?:json|png)", f.read()):
        for name in _expand_braces(pattern):
          if "NAME" not in name:  # A placeholder in a usage line.
            cited.setdefault(name, os.path.relpath(path, REPO_ROOT))
  return cited


def _expand_braces(pattern):
  """``a{1,2}b`` -> ``a1b``, ``a2b`` (the shell's shorthand the README uses), one level each."""
  start = pattern.find("{")
  if start < 0:
    return [pattern]
  end = pattern.index("}", start)
  return [name for choice in pattern[start + 1:end].split(",")
          for name in _expand_braces(pattern[:start] + choice + pattern[end + 1:])]


def test_every_cited_result_is_committed():
  cited = _cited_results()
  assert len(cited) > 30, cited  # The pattern still finds the README's citations.
  missing = {name: where for name, where in cited.items()
             if not os.path.exists(os.path.join(REPO_ROOT, name)) and name not in NOT_YET_WRITTEN}
  assert not missing, f"cited but not in results/: {missing}"
  stale = [name for name in NOT_YET_WRITTEN if os.path.exists(os.path.join(REPO_ROOT, name))]
  assert not stale, f"now written: drop from NOT_YET_WRITTEN: {stale}"


def test_every_run_summary_records_how_it_was_made():
  import json  # pylint: disable=g-import-not-at-top
  lacking = {}
  for folder, _, names in os.walk(os.path.join(REPO_ROOT, "results")):
    for name in names:
      if name.endswith(".json"):
        with open(os.path.join(folder, name)) as f:
          summary = json.load(f)
        if isinstance(summary, dict) and "test_accuracy_per_epoch" in summary:
          gaps = [k for k in SUMMARY_FIELDS if k not in summary]
          if gaps or not summary["test_accuracy_per_epoch"]:
            lacking[os.path.relpath(os.path.join(folder, name), REPO_ROOT)] = gaps
  assert not lacking, lacking
