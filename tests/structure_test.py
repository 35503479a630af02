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
