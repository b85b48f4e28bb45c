"""Input pipelines: TFDS + tf.data -> numpy batches, one implementation for all.

    for batch in make_dataset("caltech_birds2011", "train", batch_size=64,
                              train=True, seed=0, epoch=e):
      batch["image"]   # float32 [B, S, S, 3] in [0, 1], RGB
      batch["label"]   # int32 [B]

Evaluation batches (`train=False`) also hold `valid`: bool [B], False on the
padding rows that complete the last batch, so no example is lost. Where the
dataset has them, every batch also holds

* `box_mask`: float32 [B, S, S] in {0, 1}, the union of the object boxes after
  the same resize and crop as the image (`transforms.box_mask` gives the pixel
  convention). Boxes come from a `bbox` feature (`caltech_birds2011`,
  `tuxpaint_composites`), or for `imagenet2012` from the ILSVRC2012 validation
  XML files in `boxes_dir` (evaluation only), matched by `file_name`. Datasets
  without boxes (`places365_small`, `imagenet2012` without `boxes_dir`) have
  no `box_mask` key.
* `segmentation`: float32 [B, S, S] in [0, 1] from a `segmentation_mask`
  feature (uint8 0..255, divided by 255), resampled bilinearly like the image.

The dataset is chosen by its TFDS name; what it holds is read from its feature
spec, so any builder with the features `image`, `label` and optionally `bbox`
(a single `BBoxFeature` or a sequence of them), `segmentation_mask` works.
The name `folder` reads the photos of a folder instead, `data_dir` being the
folder or a glob pattern (`dre_jax.data.folder`: one split `images`, labels
-1, no boxes).

Transforms (`transforms.py`): training uses torchvision's RandomResizedCrop +
horizontal flip; evaluation, and training with `augment=False` (the DRE
stages), resize the shorter side to `resize_size` (default
`round(image_size / 0.875)`, 256 for 224) and centre-crop `image_size`.

Determinism: the order and the augmentations of an epoch depend only on
(seed, epoch, process_index). Files and examples are shuffled with seeds drawn
from them and every random op is stateless, seeded by the example's position
in the epoch, so the same arguments give the same batches and
`skip_batches=k` continues an interrupted epoch exactly where batch k starts.
Skipped examples are dropped before their images are decoded.

Multiple hosts: process p of P reads `tfds.split_for_jax_process(split)`
(`tfds.even_splits`, shard sizes differ by at most one) and gets
`batch_size // P` examples per batch. Every process yields the same number of
batches, `steps_per_epoch(...)`: for training the smallest shard's
`size // local_batch` (the remainder is dropped), for evaluation the largest
shard's `ceil(size / local_batch)`, completed with `valid=False` padding.
"""

from __future__ import annotations

import importlib
import math
import os
from typing import Iterator

from absl import logging
import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from dre_jax.data import folder
from dre_jax.data import imagenet_boxes
from dre_jax.data import transforms

try:  # tf.data only needs the CPU; leave the accelerators to JAX.
  tf.config.set_visible_devices([], "GPU")
except RuntimeError:  # The caller initialised TensorFlow's devices already.
  pass

# Builders defined in this package, registered with TFDS when first asked for.
_PACKAGE_BUILDERS = {"tuxpaint_composites": "dre_jax.data.tuxpaint_composites"}
_IMAGENET_TARS = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
EVAL_CROP_FRACTION = 0.875  # 224 / 256


class DatasetNotPreparedError(FileNotFoundError):
  """The TFDS dataset has not been downloaded and prepared in data_dir."""


def make_dataset(name: str, split: str,
                 **kwargs) -> Iterator[dict[str, np.ndarray]]:
  """One epoch (or evaluation pass) of numpy batches; see `make_tf_dataset`."""
  return iter(tfds.as_numpy(make_tf_dataset(name, split, **kwargs)))


def make_tf_dataset(
    name: str,
    split: str,
    *,
    batch_size: int,
    train: bool,
    seed: int = 0,
    epoch: int = 0,
    skip_batches: int = 0,
    image_size: int = 224,
    resize_size: int | None = None,
    augment: bool | None = None,
    shuffle_buffer: int = 10_000,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    boxes_dir: str | None = None,
    require_boxes: bool = False,
    download: bool = False,
    process_index: int | None = None,
    process_count: int | None = None,
) -> tf.data.Dataset:
  """The batches of one epoch for this process, as a `tf.data.Dataset`.

  Args:
    name: TFDS name, e.g. "caltech_birds2011", "places365_small",
      "imagenet2012", "tuxpaint_composites/<config>"; or "folder".
    split: TFDS split string, e.g. "train", "test", "validation[:10000]".
    batch_size: the global batch size, over all processes.
    train: shuffle and drop the remainder (training) or read in order and pad
      the last batch (evaluation, adds `valid`).
    seed: seeds the shuffles and the augmentations.
    epoch: which epoch of training; each has its own order and augmentations.
    skip_batches: start the epoch at this batch (resuming), 0 <= k <= steps.
    image_size: side S of the square output images.
    resize_size: evaluation resize of the shorter side; default S / 0.875.
    augment: random-resized crop + flip; defaults to `train`. False gives the
      evaluation transform, e.g. for training the relevance estimator.
    shuffle_buffer: examples (still encoded) in the training shuffle buffer.
    data_dir: TFDS data directory; None for TFDS's default. For the name
      `folder`: the folder of images or a glob pattern.
    manual_dir: where `imagenet2012` finds ILSVRC2012_img_{train,val}.tar.
    boxes_dir: ILSVRC2012 validation box XML files (evaluation only).
    require_boxes: raise, naming the fix, unless the batches will carry
      `box_mask` (the explainability metric M_E, Eq. 11, needs it).
    download: let TFDS download and prepare the dataset if it is not
      prepared yet. The datasets of this package (`tuxpaint_composites`)
      build offline and are built when missing, download or not.
    process_index, process_count: this process and the number of processes;
      default `jax.process_index()` and `jax.process_count()`.
  """
  process_index, process_count = _process(process_index, process_count)
  local_batch = local_batch_size(batch_size, process_count)
  data_dir, manual_dir, boxes_dir = (
      os.path.expanduser(d) if d else None
      for d in (data_dir, manual_dir, boxes_dir))
  builder = _builder(name, data_dir, manual_dir, download)
  if require_boxes:
    check_boxes(builder.name, "bbox" in builder.info.features, boxes_dir)
  steps = _steps(builder, split, local_batch, process_count, train)
  if not 0 <= skip_batches <= steps:
    raise ValueError(f"skip_batches={skip_batches} is outside the epoch's "
                     f"[0, {steps}] batches")
  if boxes_dir is not None and train:
    raise ValueError("boxes_dir (ILSVRC2012 validation boxes) is for "
                     "evaluation; pass train=False")
  augment = train if augment is None else augment
  resize_size = resize_size or round(image_size / EVAL_CROP_FRACTION)
  process_split = tfds.split_for_jax_process(
      split, process_index=process_index, process_count=process_count)
  file_seed, order_seed, augment_seed = (
      int(s) for s in np.random.SeedSequence(
          [seed, epoch, process_index]).generate_state(3))

  if isinstance(builder, folder.FolderImages):
    ds = builder.as_dataset(process_split, file_seed if train else None)
    # JPEGs decoded at the scale the evaluation resize needs.
    decode = folder.decoder(None if augment else resize_size)
  else:
    ds = builder.as_dataset(
        split=process_split, shuffle_files=train,
        decoders={"image": tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(shuffle_seed=file_seed))
    decode = transforms.decode_rgb
  boxes_of = _box_source(builder, process_split, boxes_dir)
  if boxes_dir is not None:
    ds = ds.filter(boxes_of.has_boxes)
  if train:
    ds = ds.shuffle(shuffle_buffer, seed=order_seed,
                    reshuffle_each_iteration=False)

  has_segmentation = "segmentation_mask" in builder.info.features

  def preprocess(position, example):
    image = decode(example["image"])
    image_hw = tf.shape(image)[:2]
    if augment:
      geometry = transforms.train_geometry(
          image_hw, image_size, tf.stack([tf.constant(augment_seed, tf.int64),
                                          position]))
    else:
      geometry = transforms.eval_geometry(image_hw, image_size, resize_size)
    pixels = tf.image.convert_image_dtype(image, tf.float32)
    if has_segmentation:  # Resampled with the image as a fourth channel.
      mask = tf.image.convert_image_dtype(example["segmentation_mask"],
                                          tf.float32)
      mask = tf.image.resize(mask, image_hw, "bilinear", antialias=True)
      pixels = tf.concat([pixels, mask], axis=-1)
    pixels = tf.clip_by_value(
        transforms.apply_geometry(pixels, geometry, image_size), 0.0, 1.0)
    out = {"image": pixels[..., :3],
           "label": tf.cast(example["label"], tf.int32)}
    if has_segmentation:
      out["segmentation"] = pixels[..., 3]
    if boxes_of is not None:
      boxes = transforms.transform_boxes(boxes_of(example), image_hw, geometry,
                                         image_size)
      out["box_mask"] = transforms.box_mask(boxes, image_size)
    return out

  ds = ds.enumerate().skip(skip_batches * local_batch)
  ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
  if not train:
    ds = ds.map(lambda ex: {**ex, "valid": tf.constant(True)})
    padding = tf.nest.map_structure(lambda s: tf.zeros(s.shape, s.dtype),
                                    ds.element_spec)
    ds = ds.concatenate(tf.data.Dataset.from_tensors(padding).repeat())
  ds = ds.take((steps - skip_batches) * local_batch)
  ds = ds.batch(local_batch, drop_remainder=True)
  options = tf.data.Options()
  options.deterministic = True
  return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def check_boxes(name: str, has_bbox: bool, boxes_dir: str | None) -> None:
  """Raises ValueError naming the fix unless batches of `name` get box masks."""
  if has_bbox:
    return
  if name == "imagenet2012":
    if not boxes_dir:
      raise ValueError(
          "the explainability metric M_E (Eq. 11) on imagenet2012 needs the "
          "ILSVRC2012 validation boxes: extract ILSVRC2012_bbox_val_v3.tgz "
          "(image-net.org) and set config.dataset.boxes_dir (boxes_dir=) to "
          "the folder of its XML files")
    if not os.path.isdir(boxes_dir):
      raise ValueError(f"boxes_dir {boxes_dir} is not a directory; set "
                       "config.dataset.boxes_dir to the folder of the "
                       "ILSVRC2012 validation box XML files")
    return
  raise ValueError(f"{name} has no object boxes, so the explainability metric "
                   "M_E (Eq. 11) cannot be computed on it; evaluate without "
                   "it or choose a dataset with boxes (caltech_birds2011, "
                   "imagenet2012 with boxes_dir, tuxpaint_composites)")


def num_examples(name: str, split: str, *, data_dir: str | None = None,
                 process_index: int = 0, process_count: int = 1) -> int:
  """Examples in `split`; with process_count > 1, in that process's shard."""
  return _split_size(_builder(name, data_dir), tfds.split_for_jax_process(
      split, process_index=process_index, process_count=process_count))


def steps_per_epoch(name: str, split: str, *, batch_size: int, train: bool,
                    data_dir: str | None = None,
                    process_count: int | None = None) -> int:
  """Batches per epoch that every process yields (see the module docstring)."""
  _, process_count = _process(0, process_count)
  return _steps(_builder(name, data_dir), split,
                local_batch_size(batch_size, process_count), process_count,
                train)


def local_batch_size(batch_size: int, process_count: int) -> int:
  """The per-process batch of a global batch; raises unless it divides."""
  if batch_size <= 0 or batch_size % process_count:
    raise ValueError(
        f"the global batch size {batch_size} must be a positive multiple of "
        f"the number of processes ({process_count})")
  return batch_size // process_count


def _process(process_index, process_count) -> tuple[int, int]:
  if process_index is None:
    process_index = jax.process_index()
  if process_count is None:
    process_count = jax.process_count()
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} is outside "
                     f"[0, {process_count})")
  return process_index, process_count


def _steps(builder, split: str, local_batch: int, process_count: int,
           train: bool) -> int:
  sizes = [_split_size(builder, tfds.split_for_jax_process(
      split, process_index=p, process_count=process_count))
           for p in range(process_count)]
  if not train:
    return math.ceil(max(sizes) / local_batch)
  steps = min(sizes) // local_batch
  if steps == 0:
    raise ValueError(
        f"{builder.name} {split!r}: a process shard of {min(sizes)} examples "
        f"is smaller than the per-process batch {local_batch}; no full "
        "training batch")
  return steps


def _split_size(builder, split) -> int:
  try:
    return builder.info.splits[split].num_examples
  except (KeyError, ValueError) as e:
    raise ValueError(
        f"{builder.name} has no split {split!r} ({e}); prepared splits: "
        f"{sorted(builder.info.splits)}") from None


def _builder(name: str, data_dir: str | None, manual_dir: str | None = None,
             download: bool = False):
  """The prepared TFDS builder, or a DatasetNotPreparedError saying why."""
  if name == folder.NAME:
    if not data_dir:
      raise ValueError("the dataset 'folder' reads the images of a folder: set "
                       "config.dataset.data_dir to the folder or a glob pattern "
                       "(configs/folder.py:path=DIR)")
    return folder.open_folder(data_dir)
  data_dir = os.path.expanduser(data_dir) if data_dir else None
  module = _PACKAGE_BUILDERS.get(name.split("/")[0].split(":")[0])
  if module is not None:
    importlib.import_module(module)
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise ValueError(
        f"unknown dataset {name!r}: use a TFDS name such as caltech_birds2011, "
        "places365_small, imagenet2012 or tuxpaint_composites") from None
  if builder.is_prepared():
    return builder
  root = builder.data_dir[:-len(builder.info.full_name)].rstrip("/")
  is_imagenet = builder.name == "imagenet2012"
  manual_dir = manual_dir or os.path.join(root, "downloads", "manual")
  has_tars = any(os.path.exists(os.path.join(manual_dir, tar))
                 for tar in _IMAGENET_TARS)
  if module is not None and jax.process_index() == 0:
    logging.info("building %s offline into %s (once)", name, root)
    builder.download_and_prepare()  # this package's builders need no network
    return builder
  if download and module is None and (has_tars or not is_imagenet):
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    return builder
  if module is not None:
    todo = (f"build it offline first: python -m {module} --configs="
            f"{name.split('/', 1)[-1] if '/' in name else 'coarse_224'} "
            f"--data_dir={root}")
  elif is_imagenet:
    todo = (f"download {' and '.join(_IMAGENET_TARS)} from image-net.org "
            f"into the manual directory {manual_dir} and run again with "
            f"config.dataset.manual_dir={manual_dir} and "
            "config.dataset.download=True (download=True in Python; this "
            "builds the TFRecords once)")
  else:
    todo = (f"let TFDS download and prepare it (config.dataset.download="
            f"True; download=True in Python), or run `tfds build {name} "
            f"--data_dir={root}` on a machine with internet access")
  raise DatasetNotPreparedError(
      f"dataset {name!r} is not prepared in the TFDS data_dir {root} (looked "
      f"for {builder.data_dir}); {todo}")


class _BoxSource:
  """Boxes of an example: from its `bbox` feature or from ImageNet XML files."""

  def __init__(self, feature: str | None, by_file: dict[str, np.ndarray]):
    self._feature = feature
    if by_file:
      names = sorted(by_file)
      lengths = [len(by_file[n]) for n in names]
      self._row_splits = tf.constant(np.cumsum([0] + lengths), tf.int64)
      self._flat = tf.constant(np.concatenate([by_file[n] for n in names]))
      self._table = tf.lookup.StaticHashTable(
          tf.lookup.KeyValueTensorInitializer(
              tf.constant(names), tf.range(len(names), dtype=tf.int64)),
          default_value=-1)

  def _row(self, example) -> tf.Tensor:
    stem = tf.strings.regex_replace(example["file_name"], r"\.[^.]*$", "")
    return self._table.lookup(stem)

  def has_boxes(self, example) -> tf.Tensor:
    return self._row(example) >= 0

  def __call__(self, example) -> tf.Tensor:
    """float32 [K, 4] normalised [ymin, xmin, ymax, xmax]."""
    if self._feature is not None:
      return tf.reshape(tf.cast(example[self._feature], tf.float32), [-1, 4])
    row = self._row(example)
    return self._flat[self._row_splits[row]:self._row_splits[row + 1]]


def _box_source(builder, split, boxes_dir: str | None) -> _BoxSource | None:
  features = builder.info.features
  if boxes_dir is None:
    return _BoxSource("bbox", {}) if "bbox" in features else None
  if "file_name" not in features:
    raise ValueError(f"boxes_dir is only for imagenet2012 (matched by "
                     f"file_name); {builder.name} has no file_name feature")
  by_file = imagenet_boxes.read_box_dir(boxes_dir)
  size = _split_size(builder, split)
  if len(by_file) < size:
    logging.warning(
        "%d box files in %s for %d examples of %s: examples without a box "
        "file are skipped; the evaluation batches are completed with "
        "valid=False padding instead", len(by_file), boxes_dir, size, split)
  return _BoxSource(None, by_file)
