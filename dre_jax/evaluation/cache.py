"""The evaluation's resumable cache: fingerprints, shard files, collection.

    dirs = cache_dirs(cache_dir, methods, classifier_id, sample, protocol)
    done = done_matrix(dirs, names, num_shards)       # [shard, COMMON + names]
    write_shard(dirs[name], k, arrays)
    per_method, common = collect(dirs, names, sample, protocol)

Each (method, shard) result is one `.npz` written atomically under
`cache_dir/<method>-<fingerprint>/` (and the method-independent targets and
figure images under `cache_dir/common-<fingerprint>/`), next to `spec.json`,
the fingerprinted description. The fingerprint covers everything that changes
the numbers: the method, its settings, its trained arrays, its registered
`revision`, the metric set (`scoring.METRICS`), the classifier, the sample and
the protocol. A shard is done when its file holds every array `collect`
reads, so a file written by an older metric set, or a damaged one, is
recomputed. The fingerprint covers the code only through each explainer's
`revision` (raised when a fix changes its maps, e.g. XPert's canvas margin)
and the metrics' names: after changing an explainer without raising it, or a
metric's definition, delete its directories (or the whole cache) to
recompute.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from typing import TYPE_CHECKING, Any, Sequence

import jax
import numpy as np

from dre_jax import atomic
from dre_jax.evaluation import scoring

if TYPE_CHECKING:  # protocol.run uses this module
  from dre_jax.classifier import Classifier
  from dre_jax.evaluation.protocol import EvalMethod, Protocol, Sample

SHARD_FILE = "shard-{:05d}.npz"
COMMON = "common"  # per-sample, method-independent data (targets, figure images)
SPEC_FILE = "spec.json"

# What every shard holds, and shard 0 besides (the figures' rows and maps).
_COMMON_KEYS = ("index", "target", "label")
_COMMON_FIRST = ("rows", "misclassified", "images")
_METHOD_TOTALS = ("seconds", "rows_processed")
_METHOD_FIRST = ("maps",)


def per_image_keys() -> tuple[str, ...]:
  """The per-image arrays of a method's shard file (besides the figure maps)."""
  return _COMMON_KEYS + scoring.names()


def _required(name: str, shard: int) -> tuple[str, ...]:
  if name == COMMON:
    return _COMMON_KEYS + (_COMMON_FIRST if shard == 0 else ())
  return per_image_keys() + _METHOD_TOTALS + (_METHOD_FIRST if shard == 0 else ())


def tree_fingerprint(*trees) -> str:
  """A short hash of the arrays of pytrees and their paths: identifies weights.

  The same in every process and every run (no object ids or reprs).
  """
  digest = hashlib.sha256()
  for tree in trees:
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
      leaf = np.asarray(leaf)
      digest.update(f"{jax.tree_util.keystr(path)}{leaf.dtype}{leaf.shape}".encode())
      digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()[:16]


def classifier_fingerprint(classifier: Classifier) -> str:
  """The classifier's architecture, preprocessing and weights, hashed, and
  its compute dtype where that is not float32 (`Classifier.dtype`; the
  evaluation's generators compute in the same dtype)."""
  dtype = "" if classifier.dtype == np.float32 else f"-{classifier.dtype.name}"
  return (f"{classifier.spec.name}-{_hash([classifier.mean, classifier.std])}-"
          f"{tree_fingerprint(classifier.variables)}{dtype}")


def _hash(value: Any) -> str:
  text = json.dumps(value, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:10]


def spec(method: EvalMethod | None, classifier_id: str, sample: Sample,
         protocol: Protocol) -> dict[str, Any]:
  """What a shard directory's fingerprint hashes (its spec.json): a method's,
  or with None the common directory's (which holds no metric)."""
  out = {"classifier": classifier_id, "protocol": protocol.fingerprint(),
         "sample": sample.description,
         "positions": hashlib.sha256(sample.positions.tobytes()).hexdigest()[:16]}
  if method is not None:
    out["method"] = {"name": method.name, "settings": method.settings,
                     "fingerprint": method.fingerprint,
                     "revision": method.revision}
    out["metrics"] = list(scoring.names())
  return out


def cache_dirs(cache_dir: str, methods: Sequence[EvalMethod], classifier_id: str,
               sample: Sample, protocol: Protocol) -> dict[str, str]:
  """{method name or COMMON: its shard directory}, named by a fingerprint."""
  out = {COMMON: os.path.join(
      cache_dir, f"{COMMON}-{_hash(spec(None, classifier_id, sample, protocol))}")}
  for m in methods:
    out[m.name] = os.path.join(
        cache_dir, f"{m.name}-{_hash(spec(m, classifier_id, sample, protocol))}")
  return out


def write_specs(dirs: dict[str, str], methods: Sequence[EvalMethod],
                classifier_id: str, sample: Sample, protocol: Protocol) -> None:
  """Each method directory's spec.json (kept when present)."""
  for m in methods:
    path = os.path.join(dirs[m.name], SPEC_FILE)
    if not os.path.exists(path):
      atomic.write_atomic(path, json.dumps(
          spec(m, classifier_id, sample, protocol), indent=2, sort_keys=True,
          default=str))


def _shard_path(directory: str, shard: int) -> str:
  return os.path.join(directory, SHARD_FILE.format(shard))


def _is_complete(path: str, keys: Sequence[str]) -> bool:
  """The shard file exists, is readable and holds every key."""
  if not os.path.exists(path):
    return False
  try:
    with np.load(path) as f:
      return set(keys) <= set(f.files)
  except (OSError, ValueError, EOFError, zipfile.BadZipFile):
    return False


def done_matrix(dirs: dict[str, str], names: Sequence[str], num_shards: int
                ) -> np.ndarray:
  """[shard, (COMMON, *names)] bool: the shard file holds what `collect` reads."""
  return np.array([[is_done(dirs[n], n, k) for n in [COMMON, *names]]
                   for k in range(num_shards)], bool)


def is_done(directory: str, name: str, shard: int) -> bool:
  """The shard file of `name` (a method or COMMON) holds what `collect` reads."""
  return _is_complete(_shard_path(directory, shard), _required(name, shard))


def write_shard(directory: str, shard: int, arrays: dict[str, np.ndarray]) -> None:
  """One shard's arrays as an .npz, written atomically."""
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  atomic.write_atomic(_shard_path(directory, shard), buffer.getvalue())


def _load(path: str) -> dict[str, np.ndarray]:
  try:
    with np.load(path) as f:
      return {k: f[k] for k in f.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise ValueError(f"{path} is damaged ({e}); delete it and rerun to "
                     "recompute that shard") from None


def collect(dirs: dict[str, str], methods: Sequence[str], sample: Sample,
            protocol: Protocol, max_shards: int | None = None
            ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
  """Reads the shard files back: ({method: per-image arrays + seconds, rows,
  maps}, common {index, target, label, figure rows, images, box masks})."""
  limit = sample.shard_limit(protocol.shard_size, max_shards)

  def read(name):
    parts = []
    for k in range(limit):
      path = _shard_path(dirs[name], k)
      if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: the run did not finish; "
                                "rerun the same command to complete it")
      part = _load(path)
      missing = [key for key in _required(name, k) if key not in part]
      if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)} (written by another "
                         "metric set); rerun the same command to recompute it")
      parts.append(part)
    return parts

  common_parts = read(COMMON)
  common = {key: np.concatenate([p[key] for p in common_parts])
            for key in _COMMON_KEYS}
  common.update({key: common_parts[0][key] for key in (*_COMMON_FIRST, "box_mask")
                 if key in common_parts[0]})
  per_method = {}
  for name in methods:
    parts = read(name)
    arrays = {key: np.concatenate([p[key] for p in parts])
              for key in per_image_keys()}
    if not np.array_equal(arrays["index"], common["index"]):
      raise ValueError(f"the shards of {name!r} in {dirs[name]} cover other "
                       "images than the sample; delete that directory and rerun")
    arrays["seconds"] = float(sum(float(p["seconds"]) for p in parts))
    arrays["rows_processed"] = int(sum(int(p["rows_processed"]) for p in parts))
    arrays["maps"] = parts[0]["maps"]
    per_method[name] = arrays
  return per_method, common
