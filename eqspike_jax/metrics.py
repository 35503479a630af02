"""Metrics at the logging boundary: typed pytrees in, ``{"a/b/layer0": value}`` out."""

from typing import Any, Dict

import jax


def _name(entry) -> str:
  if isinstance(entry, jax.tree_util.DictKey):
    return str(entry.key)
  if isinstance(entry, jax.tree_util.GetAttrKey):
    return entry.name
  if isinstance(entry, jax.tree_util.SequenceKey):
    return f"layer{entry.idx}"
  raise TypeError(f"cannot name the metric path entry {entry!r}.")


def flatten(tree: Any) -> Dict[str, Any]:
  """Names every leaf by its path: dict keys and dataclass fields, ``layerN`` for tuple items."""
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {"/".join(_name(e) for e in path): leaf for path, leaf in leaves}
