"""The classifier directory: converted or fine-tuned classifier weights on disk.

    directory/
      variables/        an orbax checkpoint of {"params", "batch_stats"}
      variables.files.json  size and SHA-256 of each file in variables/
      classifier.json   {"arch": registry name, "num_classes": K}, written last

`classifier.json` marks the directory complete: it is written (atomically)
only after the variables are, so a directory without it is an interrupted
write, which `save_classifier` replaces and `load_classifier` refuses with the
repair. `dre-convert` (`dre_jax.cli.convert`) and `dre-train` (workdir/classifier)
write it; `load_classifier` reads it back as a `dre_jax.classifier.Classifier`.
"""

from __future__ import annotations

import hashlib
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
  save_variables(os.path.join(directory, VARIABLES_DIR),
                 jax.tree.map(np.asarray, dict(variables)))
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


MANIFEST_SUFFIX = ".files.json"


def _file_digests(path: str) -> dict[str, dict[str, Any]]:
  """{relative file name: {"bytes", "sha256"}} of every file under `path`."""
  digests = {}
  for root, _, names in os.walk(path):
    for name in sorted(names):
      full = os.path.join(root, name)
      sha = hashlib.sha256()
      with open(full, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          sha.update(block)
      digests[os.path.relpath(full, path)] = {
          "bytes": os.path.getsize(full), "sha256": sha.hexdigest()}
  return digests


def save_variables(path: str, variables: Any) -> None:
  """Saves `variables` as an orbax checkpoint at `path`, then (process 0) the
  size and SHA-256 of each of its files in `<path>.files.json`, which
  `restore_variables` checks before it reads anything. Collective: every
  process calls it."""
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(path, variables, force=True)
  if jax.process_index() == 0:
    atomic.write_atomic(path + MANIFEST_SUFFIX, json.dumps(
        _file_digests(path), indent=1, sort_keys=True))


def _verify_files(path: str, repair: str) -> None:
  """Compares the files at `path` with `<path>.files.json` (when it exists:
  checkpoints written without one are left to orbax). A missing, truncated or
  altered file raises one ValueError naming it and the repair."""
  manifest = path + MANIFEST_SUFFIX
  if not os.path.isfile(manifest):
    return
  try:
    with open(manifest) as f:
      expected = {str(k): (int(v["bytes"]), str(v["sha256"]))
                  for k, v in json.load(f).items()}
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise ValueError(f"{manifest} is damaged ({type(e).__name__}); "
                     f"{repair}") from None
  for name, (size, _) in sorted(expected.items()):
    full = os.path.join(path, name)
    if not os.path.isfile(full):
      raise ValueError(f"{path} is damaged ({name} is missing); {repair}")
    actual = os.path.getsize(full)
    if actual != size:
      raise ValueError(f"{path} is damaged ({name} has {actual} bytes, "
                       f"{size} were written); {repair}")
  found = _file_digests(path)
  for name, (_, digest) in sorted(expected.items()):
    if found[name]["sha256"] != digest:
      raise ValueError(f"{path} is damaged ({name} differs from what was "
                       f"written: SHA-256 mismatch); {repair}")


def restore_variables(path: str, target: Any, repair: str) -> Any:
  """Restores the orbax checkpoint at `path` like `target` (shapes, dtypes).

  The files are first checked against `<path>.files.json` (size, SHA-256).
  Any failure (missing, truncated or foreign files, other shapes) becomes one
  ValueError naming `path` and the `repair`. Returns JAX arrays.
  """
  if not os.path.isdir(path):
    raise ValueError(f"{path} is missing; {repair}")
  _verify_files(path, repair)
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
  # tensorstore can also report the callback's error through sys.excepthook.
  previous_excepthook = sys.excepthook

  def excepthook(kind, error, traceback):
    if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
      return
    previous_excepthook(kind, error, traceback)

  sys.excepthook = excepthook

