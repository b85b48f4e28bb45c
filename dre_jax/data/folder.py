"""A folder of unlabeled photos as a dataset: `name="folder"`, `data_dir=` the folder.

    images = folder.open_folder("~/photos")          # or "~/photos/**/*.jpg"
    images.info.splits["images[10%:]"].num_examples  # TFDS split syntax

DRE needs no labels (paper Sec. 4.1: "only the outputs of the classifiers are
utilized"), so any photos train it for any classifier: the pipelines
(`dre_jax.data.pipelines`) read a folder wherever they read a TFDS dataset,
with the dataset name `folder` and the folder (or glob pattern) as `data_dir`.
Examples carry `label` -1 (none); the stages explain the classifier's
prediction t.

What is read: the files under the folder with an image extension
(`dre_jax.images.EXTENSIONS`, recursively), or the files a glob pattern
matches, decoded as `dre_jax.images.load` decodes them for `explain.py` (any
size and mode; transparency on white; EXIF orientation applied). Each file is
decoded once when the folder is opened: the unreadable ones are skipped and
counted on one warning line, once per process.

The split: the readable files, in a fixed pseudo-random order (by a CRC-32 of
each path relative to the folder, so the order does not depend on the seed or
on where the folder lies), form one split `images`; TFDS's split syntax cuts it:
`images[10%:]` trains, `images[:10%]` is a held-out share for `evaluate.py`
(M_F only: a folder has no object boxes). Resuming keeps the data position as
long as the folder holds the same files.

Test-only photos: the photos that ship with scikit-image, scikit-learn,
Debian's opencv-doc and Debian's darknet package are the natural-photo test set
(`scripts/natural_photos.py`); a folder holding any of them is refused
(`check_not_test_only`, `TEST_ONLY`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import glob
import importlib.util
import os
import types
import zlib

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from dre_jax import config as config_lib
from dre_jax import images as images_lib

NAME = config_lib.FOLDER
SPLIT = "images"


def package_dir(package: str, *parts: str) -> str | None:
  """A directory inside an installed package, found without importing it."""
  try:
    spec = importlib.util.find_spec(package)
  except (ImportError, ValueError):
    return None
  locations = list(spec.submodule_search_locations or []) if spec else []
  return os.path.join(locations[0], *parts) if locations else None


def _cache_dir(name: str) -> str:
  return os.path.join(os.environ.get("XDG_CACHE_HOME") or
                      os.path.expanduser("~/.cache"), name)


# Where scripts/setup_env.sh --photos unpacks the Debian packages of the
# test-only photos without root (`dpkg-deb -x` into the checkout's data/photos/).
PHOTOS_LOCAL_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "data", "photos")


def _debian_dirs(*dirs: str) -> list[str]:
  """A Debian package's directories: installed (/usr/...) and unpacked into
  `PHOTOS_LOCAL_DIR`."""
  return [d for rel in dirs
          for d in (os.sep + rel, os.path.join(PHOTOS_LOCAL_DIR, rel))]


# The test-only photos' directories, by the package that installs them.
TEST_ONLY = {
    "scikit-image (skimage.data)": lambda: [
        package_dir("skimage", "data"), _cache_dir("scikit-image")],
    "scikit-learn (sklearn.datasets images)": lambda: [
        package_dir("sklearn", "datasets", "images")],
    "Debian's opencv-doc": lambda: _debian_dirs("usr/share/doc/opencv-doc"),
    "Debian's darknet": lambda: _debian_dirs("usr/share/darknet",
                                             "usr/share/doc/darknet"),
}


def test_only_dirs() -> dict[str, list[str]]:
  """{package: its photo directories (real paths)} of `TEST_ONLY`."""
  return {package: [os.path.realpath(d) for d in dirs() if d]
          for package, dirs in TEST_ONLY.items()}


def check_not_test_only(paths: list[str]) -> None:
  """Raises ValueError if a path lies inside a test-only photo directory."""
  roots = test_only_dirs()
  for path in paths:
    real = os.path.realpath(path)
    for package, dirs in roots.items():
      for root in dirs:
        if real == root or real.startswith(root + os.sep):
          raise ValueError(
              f"{path} is one of the photos of {package} ({root}), which are "
              "test-only (the natural-photo test set): train on a folder of "
              "other photos")


def _root(pattern: str) -> str:
  """The directory a folder or glob pattern starts at (its paths' base)."""
  if os.path.isdir(pattern):
    return pattern
  parts = pattern.split(os.sep)
  for i, part in enumerate(parts):
    if glob.has_magic(part):
      return os.sep.join(parts[:i]) or "."
  return os.path.dirname(pattern) or "."


def _order_key(path: str, root: str) -> tuple[int, str]:
  rel = os.path.relpath(path, root)
  return zlib.crc32(rel.encode("utf-8", "surrogateescape")), rel


# (absolute path, size, mtime) -> None if it decodes, else the reason.
_CHECKED: dict[tuple[str, int, int], str | None] = {}
_REPORTED: set[tuple[str, tuple[str, ...]]] = set()


def _problem(path: str) -> str | None:
  try:
    stat = os.stat(path)
  except OSError as e:
    return f"{path}: cannot read the file ({e.strerror or e})"
  key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
  if key not in _CHECKED:
    try:
      images_lib.load(path, min_side=1)
      _CHECKED[key] = None
    except images_lib.ImageError as e:
      _CHECKED[key] = str(e)
  return _CHECKED[key]


def scan(pattern: str) -> tuple[list[str], list[str]]:
  """(readable image files in split order, one line per unreadable file).

  Raises FileNotFoundError for a folder or pattern that does not exist,
  ValueError when it holds no readable image or a test-only photo.
  """
  pattern = os.path.expanduser(pattern)
  if not (os.path.exists(pattern) or glob.has_magic(pattern)):
    raise FileNotFoundError(
        f"image folder {pattern} does not exist; give a folder of photos or a "
        "glob pattern (configs/folder.py:path=~/photos or path='~/photos/*.jpg')")
  files, problems = images_lib.expand([pattern])
  if not files:
    reason = problems[0].reason if problems else "holds no image files"
    raise ValueError(f"image folder {pattern}: {reason}; give a folder of "
                     "photos (JPEG, PNG, WebP, ...)")
  check_not_test_only([pattern, *files])
  with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
    reasons = list(pool.map(_problem, files))
  bad = [r for r in reasons if r is not None]
  good = [f for f, r in zip(files, reasons) if r is None]
  if not good:
    raise ValueError(f"image folder {pattern}: none of its {len(files)} image "
                     f"files can be read (e.g. {bad[0]})")
  root = _root(pattern)
  good.sort(key=lambda f: _order_key(f, root))
  return good, bad


def _warn_once(pattern: str, total: int, bad: list[str]) -> None:
  key = (os.path.abspath(os.path.expanduser(pattern)), tuple(bad))
  if bad and key not in _REPORTED:
    _REPORTED.add(key)
    logging.warning("image folder %s: %d of %d image files are unreadable and "
                    "skipped (%s%s)", pattern, len(bad), total, bad[0],
                    f"; {len(bad) - 1} more" if len(bad) > 1 else "")


@dataclasses.dataclass(frozen=True)
class FolderImages:
  """The readable photos of a folder, as the pipelines read a TFDS builder:
  `name`, `info.splits` (one split `SPLIT`), `info.features` and `as_dataset`."""

  pattern: str
  files: tuple[str, ...]

  name = NAME

  @property
  def info(self):
    template = tfds.core.naming.ShardedFileTemplate(
        data_dir=_root(self.pattern), template="{SPLIT}", dataset_name=NAME)
    split = tfds.core.SplitInfo(name=SPLIT, shard_lengths=[len(self.files)],
                                num_bytes=0, filename_template=template)
    return types.SimpleNamespace(splits=tfds.core.SplitDict([split]),
                                 features={"image": None, "label": None})

  def split_files(self, split) -> list[str]:
    """The files of a split (`images`, `images[:10%]`, a process's share)."""
    out = []
    for part in self.info.splits[split].file_instructions:
      end = len(self.files) if part.take < 0 else part.skip + part.take
      out += self.files[part.skip:end]
    return out

  def as_dataset(self, split, shuffle_seed: int | None = None
                 ) -> tf.data.Dataset:
    """{"image": the file's path, "label": -1} in split order, or permuted
    with `shuffle_seed`."""
    files = self.split_files(split)
    if shuffle_seed is not None:
      files = [files[i] for i in
               np.random.default_rng(shuffle_seed).permutation(len(files))]
    return tf.data.Dataset.from_tensor_slices(
        {"image": tf.constant(files, tf.string),
         "label": tf.fill([len(files)], tf.constant(-1, tf.int64))})


def open_folder(pattern: str) -> FolderImages:
  """The folder's readable photos (`scan`), the unreadable ones reported once."""
  files, bad = scan(pattern)
  _warn_once(pattern, len(files) + len(bad), bad)
  return FolderImages(os.path.expanduser(pattern), tuple(files))


def decoder(min_side: int | None):
  """A tf function: a path -> float32 [H, W, 3] in [0, 1] (`images.load`).

  min_side: JPEGs are decoded at a reduced scale keeping this many pixels.
  """

  def load(path: bytes) -> np.ndarray:
    return images_lib.load(path.decode("utf-8", "surrogateescape"),
                           min_side=min_side)

  def decode(path: tf.Tensor) -> tf.Tensor:
    image = tf.numpy_function(load, [path], tf.float32, stateful=False)
    image.set_shape([None, None, 3])
    return image

  return decode
