"""The library's training and evaluation on a machine without TensorFlow (the lent GPU).

The device machine has JAX, Flax, optax and orbax but no TensorFlow, TFDS or
network. The core package (models, DRE, explainers, metrics) imports without
them; the trainer does not, for two reasons only: its input
(`dre_jax.training.input`, built on the TFDS pipelines) and its metric writer
(`clu.metric_writers`, whose package `__init__` imports TensorFlow for its
TensorBoard writer). `install_shims(splits)` replaces exactly those two with
in-memory equivalents, so `dre_jax.training` runs unchanged (its stages, step
functions, optimisers, checkpoints) on arrays exported by `scripts/gpu/export.py`:

    data = offline.load_composites(".gpu/data/composites_224.npz")
    offline.install_shims({("tuxpaint_composites/coarse_224", "train"): data["train"]})
    from dre_jax.training import trainer     # imports now, no TensorFlow needed

What differs from the TFDS input: the examples are the exported WebP-decoded
images (PSNR in the export), and an epoch's order is a numpy permutation seeded
by (seed, epoch), not tf.data's shuffle buffer. Everything else is the
library's own code.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import sys
import time
import types
from concurrent import futures
from typing import Iterator

import numpy as np

Batch = dict[str, np.ndarray]
SCALARS: list[dict[str, float]] = []  # every write_scalars of the trainer, timed
_SPLITS: dict[tuple[str, str], dict[str, np.ndarray]] = {}


# ----------------------------------------------------------------------------
# Data exported by scripts/gpu/export.py.

def _decode(blob: bytes) -> np.ndarray:
  from PIL import Image
  return np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"), np.uint8)


def load_composites(path: str, size: int = 224) -> dict[str, dict[str, np.ndarray]]:
  """{"train", "test"} -> {"image" uint8 [N, S, S, 3], "label" int32 [N], "box_mask" float32 [N, S, S]}."""
  z = np.load(path)
  out = {}
  for split in ("train", "test"):
    data, offsets = z[f"{split}_bytes"], z[f"{split}_offsets"]
    blobs = [data[offsets[i]:offsets[i + 1]].tobytes()
             for i in range(len(offsets) - 1)]
    with futures.ThreadPoolExecutor(os.cpu_count() or 4) as pool:
      images = np.stack(list(pool.map(_decode, blobs)))
    bits = np.unpackbits(z[f"{split}_box_bits"], axis=1)[:, :size * size]
    out[split] = {"image": images, "label": z[f"{split}_label"].astype(np.int32),
                  "box_mask": bits.reshape(-1, size, size).astype(np.float32)}
  out["psnr_db"] = {s: float(z[f"{s}_psnr_db"]) for s in ("train", "test")}
  return out


def load_variables(path: str) -> dict:
  """The nested variables of an npz written by export.py ("/"-joined paths)."""
  import flax
  z = np.load(path)
  return flax.traverse_util.unflatten_dict(
      {tuple(k.split("/")): z[k] for k in z.files})


# ----------------------------------------------------------------------------
# In-memory replacements of the two TensorFlow-bound imports of the trainer.

def _rows(name: str, split: str) -> dict[str, np.ndarray]:
  """The registered arrays of `split`, with TFDS slices "train[:N]" / "[A:B]"."""
  m = re.fullmatch(r"(\w+)(?:\[(-?\d*):(-?\d*)\])?", split)
  if not m or (name, m.group(1)) not in _SPLITS:
    raise KeyError(f"{name}/{split} was not given to offline.install_shims "
                   f"(have {sorted(_SPLITS)})")
  data = _SPLITS[(name, m.group(1))]
  lo = int(m.group(2)) if m.group(2) else None
  hi = int(m.group(3)) if m.group(3) else None
  return {k: v[lo:hi] for k, v in data.items()}


def _float_images(images: np.ndarray) -> np.ndarray:
  return images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images


@dataclasses.dataclass(frozen=True)
class TrainInput:
  """`dre_jax.training.input.TrainInput` on in-memory arrays (one process)."""

  name: str
  split: str
  batch_size: int
  image_size: int
  augment: bool
  seed: int = 0
  data_dir: str | None = None
  manual_dir: str | None = None
  shuffle_buffer: int = 10_000
  num_shards: int = 0

  def __post_init__(self):
    if self.augment:
      raise NotImplementedError("offline.TrainInput has no augmentation "
                                "(the DRE stages use augment=False)")

  def steps_per_epoch(self) -> int:
    return len(_rows(self.name, self.split)["label"]) // self.batch_size

  def epoch(self, epoch: int, skip_batches: int = 0) -> Iterator[Batch]:
    data = _rows(self.name, self.split)
    order = np.random.default_rng(
        np.random.SeedSequence([self.seed, epoch])).permutation(len(data["label"]))
    for b in range(skip_batches, self.steps_per_epoch()):
      idx = np.sort(order[b * self.batch_size:(b + 1) * self.batch_size])
      yield {"image": _float_images(data["image"][idx]),
             "label": data["label"][idx]}


def eval_batches(name: str, split: str, *, batch_size: int, image_size: int,
                 data_dir: str | None = None, with_boxes: bool = False
                 ) -> Iterator[Batch]:
  """In order, the last batch padded with `valid=False` rows (as the pipeline)."""
  del image_size, data_dir
  data = _rows(name, split)
  n = len(data["label"])
  keys = ("image", "label", "box_mask") if with_boxes else ("image", "label")
  for start in range(0, n, batch_size):
    idx = np.arange(start, start + batch_size)
    valid = idx < n
    idx = np.where(valid, idx, 0)
    batch = {k: data[k][idx] for k in keys}
    batch["image"] = _float_images(batch["image"])
    batch["valid"] = valid
    yield batch


def _prepare(name: str, split: str, **_) -> None:
  _rows(name, split)


def _metric_writers_without_tensorflow() -> types.ModuleType:
  """`clu.metric_writers` with its TensorFlow-free writers (logging, multi, async).

  clu's package `__init__` imports its TensorBoard writer, which imports
  TensorFlow; the submodules used here do not. The returned package has the
  real submodules and a `create_default_writer` that logs (absl) instead of
  writing TensorBoard files.
  """
  import clu  # pylint: disable=import-outside-toplevel
  package = types.ModuleType("clu.metric_writers")
  package.__path__ = [os.path.join(os.path.dirname(clu.__file__), "metric_writers")]
  package.__package__ = "clu.metric_writers"
  sys.modules["clu.metric_writers"] = package
  clu.metric_writers = package
  from clu.metric_writers import interface, logging_writer, multi_writer  # pylint: disable=import-outside-toplevel
  from clu.metric_writers import async_writer  # pylint: disable=import-outside-toplevel
  package.MetricWriter = interface.MetricWriter
  package.LoggingWriter = logging_writer.LoggingWriter
  package.MultiWriter = multi_writer.MultiWriter
  package.AsyncWriter = async_writer.AsyncWriter
  package.AsyncMultiWriter = async_writer.AsyncMultiWriter
  package.ensure_flushes = async_writer.ensure_flushes

  class RecordingWriter(logging_writer.LoggingWriter):
    """Logs like clu's LoggingWriter and keeps every scalar in `SCALARS`."""

    def write_scalars(self, step, scalars):
      SCALARS.append({"time": time.time(), "step": int(step),
                      **{k: float(v) for k, v in scalars.items()}})
      super().write_scalars(step, scalars)

  def create_default_writer(logdir=None, *, just_logging=False,
                            asynchronous=True, collection=None):
    del logdir, just_logging, asynchronous
    return RecordingWriter(collection=collection)

  package.create_default_writer = create_default_writer
  return package


def install_shims(splits: dict[tuple[str, str], dict[str, np.ndarray]]) -> None:
  """Registers `splits` and makes `dre_jax.training` importable without TensorFlow."""
  _SPLITS.update(splits)
  try:
    import tensorflow  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    have_tf = True
  except ImportError:
    have_tf = False
  if not have_tf and "clu.metric_writers" not in sys.modules:
    _metric_writers_without_tensorflow()
  module = types.ModuleType("dre_jax.training.input")
  module.__doc__ = "In-memory replacement installed by scripts/gpu/offline.py."
  module.Batch = Batch
  module.TrainInput = TrainInput
  module.prepare = _prepare
  module.eval_batches = eval_batches
  sys.modules["dre_jax.training.input"] = module
  if "dre_jax.training" in sys.modules:
    sys.modules["dre_jax.training"].input = module


def block_tensorflow() -> None:
  """Makes TensorFlow and TFDS unimportable (to rehearse the GPU machine here)."""
  for name in ("tensorflow", "tensorflow_datasets"):
    sys.modules[name] = None


if os.environ.get("DRE_GPU_BLOCK_TF"):  # rehearsing the GPU machine on this one
  block_tensorflow()
