"""The classifier directory: converted or fine-tuned classifier weights on disk.

    directory/
      variables/        an orbax checkpoint of {"params", "batch_stats"}
      classifier.json   {"arch": registry name, "num_classes": K}, written last

`classifier.json` marks the directory complete: it is written (atomically)
only after the variables are, so a directory without it is an interrupted
write, which `save_classifier` replaces and `load_classifier` refuses with the
repair. `dre-convert` (`dre_jax.cli.convert`) and `dre-train` (workdir/classifier)
write it; `load_classifier` reads it back as a `dre_jax.classifier.Classifier`.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from dre_jax import atomic
from dre_jax.classifier import Classifier
from dre_jax.io import torch_weights
from dre_jax.models import registry

METADATA_FILE = "classifier.json"
VARIABLES_DIR = "variables"


def is_complete(directory: str | os.PathLike) -> bool:
  """True when `directory` holds a finished classifier (its classifier.json)."""
  return os.path.isfile(os.path.join(
      os.path.expanduser(os.fspath(directory)), METADATA_FILE))


def save_classifier(directory: str | os.PathLike, spec_name: str,
                    num_classes: int, variables: Mapping[str, Any]) -> str:
  """Writes `variables` and `{arch, num_classes}` to `directory`.

  The variables first (orbax writes them to a temporary directory and renames
  it when complete), then `classifier.json` by an atomic rename, so a
  directory never looks complete before it is. An interrupted earlier write
  (variables without classifier.json) is replaced; a complete classifier is
  never overwritten. Returns the absolute directory.
  """
  registry.get(spec_name)  # fail early on unknown names
  directory = os.path.abspath(os.path.expanduser(os.fspath(directory)))
  if is_complete(directory):
    raise FileExistsError(
        f"{directory} already holds a classifier; remove it or choose "
        "another --out")
  os.makedirs(directory, exist_ok=True)
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.join(directory, VARIABLES_DIR),
                      jax.tree.map(np.asarray, dict(variables)), force=True)
  if jax.process_index() == 0:  # orbax's save is collective; the JSON is not
    atomic.write_atomic(os.path.join(directory, METADATA_FILE), json.dumps(
        {"arch": spec_name, "num_classes": int(num_classes)}))
  return directory


def read_metadata(directory: str | os.PathLike) -> dict[str, Any]:
  """`{"arch", "num_classes"}` of a classifier directory; clear errors."""
  directory = os.path.abspath(os.path.expanduser(os.fspath(directory)))
  meta_path = os.path.join(directory, METADATA_FILE)
  if not os.path.isfile(meta_path):
    raise FileNotFoundError(
        f"{directory} is not a classifier directory (no {METADATA_FILE}); "
        "write one with `dre-convert`")
  try:
    with open(meta_path) as f:
      meta = json.load(f)
    meta = {"arch": str(meta["arch"]), "num_classes": int(meta["num_classes"])}
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f"{meta_path} is damaged ({type(e).__name__}: {e}); "
                     f"delete {directory} and convert or train again") from None
  registry.get(meta["arch"])
  return meta


def load_classifier(directory: str | os.PathLike, dtype=jnp.float32
                    ) -> Classifier:
  """Reads what `save_classifier` wrote, as a frozen `Classifier`.

  Raises FileNotFoundError (not a classifier directory) or ValueError (a
  damaged one), each naming the file and the repair.
  """
  directory = os.path.abspath(os.path.expanduser(os.fspath(directory)))
  meta = read_metadata(directory)
  spec = registry.get(meta["arch"])
  target = flax.traverse_util.unflatten_dict(
      torch_weights.variable_shapes(spec, meta["num_classes"], dtype))
  variables = restore_variables(os.path.join(directory, VARIABLES_DIR), target,
                                f"delete {directory} and convert or train again")
  return Classifier.create(spec, variables, num_classes=meta["num_classes"],
                           dtype=dtype)


def restore_variables(path: str, target: Any, repair: str) -> Any:
  """Restores the orbax checkpoint at `path` like `target` (shapes, dtypes).

  Any failure (missing, truncated or foreign files, other shapes) becomes one
  ValueError naming `path` and the `repair`. Returns JAX arrays.
  """
  if not os.path.isdir(path):
    raise ValueError(f"{path} is missing; {repair}")
  target = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), target)
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      variables = checkpointer.restore(path, target)
  except Exception as e:  # orbax raises many types for a damaged directory.
    _drop_closed_loop_callbacks()
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    raise ValueError(f"cannot restore {path} ({type(e).__name__}: "
                     f"{first[:200]}); {repair}") from None
  problems = [f"{'/'.join(map(str, p))} {np.shape(v)} != {np.shape(t)}"
              for (p, v), t in zip(
                  jax.tree_util.tree_leaves_with_path(variables),
                  jax.tree.leaves(target)) if np.shape(v) != np.shape(t)]
  if problems:
    raise ValueError(f"{path} does not fit its metadata ({problems[0]}); "
                     f"{repair}")
  # JAX arrays, not numpy: functions that close over the variables (a trained
  # explainer) index them with traced values under jit.
  return jax.tree.map(jnp.asarray, variables)


def _drop_closed_loop_callbacks() -> None:
  """Silences the echo of a failed restore.

  After orbax gives up on a damaged checkpoint, tensorstore's reads still in
  flight call back into orbax's closed asyncio loop; each raises "Event loop
  is closed" in a callback, which Python prints as an unraisable exception
  (dozens of tracebacks after the one clear error). Only those are dropped.
  """
  previous = sys.unraisablehook
  if getattr(previous, "drops_closed_loop_callbacks", False):
    return

  def hook(unraisable):
    error = unraisable.exc_value
    if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
      return
    previous(unraisable)

  hook.drops_closed_loop_callbacks = True
  sys.unraisablehook = hook

