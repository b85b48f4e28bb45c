"""Tux Paint photo composites: an offline real-photo benchmark with exact masks.

Photographic cut-outs from Debian's Tux Paint stamps (RGBA PNGs whose alpha
channel is an exact object mask) are pasted onto random crops of Tux Paint's
real background photos. Every example therefore has a known object box and a
known per-pixel object mask, like CUB-200-2011, and needs no download: the
builder reads the installed Debian files.

Install the source files (about 15 s):

    apt-get update && apt-get install -y tuxpaint-stamps-default tuxpaint-data

or, without root, `bash scripts/setup_env.sh` (`apt-get download` and
`dpkg-deb -x` of the same two packages into the checkout's `data/tuxpaint/`).

Build (TFDS 4.9.10's `tfds build` command needs apache_beam, so use Python):

    python -m dre_jax.data.tuxpaint_composites --configs=coarse_224 \
        --data_dir=~/tensorflow_datasets

or on first use:

    import tensorflow_datasets as tfds
    from dre_jax.data import tuxpaint_composites  # registers the builder
    ds = tfds.load("tuxpaint_composites/coarse_224", split="test")

The files are read from `/usr/share/tuxpaint`, else from the unpacked
packages under `data/tuxpaint/` (`LOCAL_ROOT`); another root (a tree with
`stamps/` and `templates/`) can be given with the builder argument
`tfds.builder(..., tuxpaint_root=...)` or the environment variable
`DRE_TUXPAINT_ROOT`. The root is not part of the config: build different roots
into different `data_dir`s.

Features (the same FeaturesDict as TFDS `caltech_birds2011`, so every pipeline,
config and metric runs on both unchanged):

* `image`: uint8 [S, S, 3], PNG-encoded (lossless, unlike CUB's JPEGs).
* `image/filename`: Text, the example's provenance
  `"<split>/<index>:<stamp path>@<background file>"`, e.g.
  `"test/000017:animals/birds/crow.png@rocks.jpg"` (CUB: the image's path);
  several objects are joined by "+".
* `label`: ClassLabel (coarse: 14 classes; fine: one per object).
* `label_name`: Text, the class name (fine: the stamp path without `.png`).
* `bbox`: BBoxFeature `[ymin, xmin, ymax, xmax]` in [0, 1], the tight box of
  the object pixels `segmentation_mask >= 128` (pasted alpha >= 0.5), in CUB's
  convention: pixel rows r0..r1 give `ymin = r0 / S`, `ymax = (r1 + 1) / S`.
  The natural layout (`coarse_natural_*`) has a Sequence of them, one box per
  object, each the tight box of that object's own pasted alpha >= 0.5.
* `segmentation_mask`: uint8 [S, S, 1] in 0..255, the pasted alpha after
  resampling (CUB's masks are also soft uint8 0..255 maps), 0 outside; with
  several objects their alphas combined like the colours.

Each example of the uniform layout (all configs but `coarse_natural_*`)
draws, from a seed made of the config name, the split and the index (`numpy`
PCG64 via `SeedSequence`): a class (uniform over the classes
present in the split), an object of it (uniform), a background photo, a square
crop of it (side 50-100% of its short side, random position, mirrored with
p=0.5), the object's box share of the image (uniform in [0.10, 0.60]), a
horizontal mirror of the object (p=0.5, unless its Tux Paint `.dat` file says
`nomirror`) and its position (up to 10% of its width/height may overhang the
border). Draws that leave more than 10% of the object's alpha outside the image
or a box share outside [0.10, 0.60] are redrawn. Pillow resamples the
background crop bicubically and the RGBA stamp bilinearly (premultiplied alpha;
non-negative weights, so no overshoot halo in the mask), both antialiased when
downscaling. The object is alpha-blended in integer arithmetic, so the image
equals the resampled stamp exactly where the mask is 255 and the background
crop exactly where it is 0. Small stamps are upscaled (the smallest fruit are
about 50 px wide) and look soft at 224 px. Given the same Pillow, libjpeg and
TensorFlow versions the examples are byte-identical on every machine; nothing
depends on time or Python's hash seed.

Which stamps are used ("photographic cut-outs"), in this order:

1. Folder: the stamp's folder (relative to `stamps/`) must fall under one of the
   class folders in `COARSE_CLASSES` (longest prefix wins), and no folder on its
   path may be named `cartoon` or `toys` (a teddy bear is not a mammal). This
   leaves out `cartoon/`, `symbols/` (letters, chess, maths, music, money,
   shapes), `town/` (signs, flags, cartoon houses), `seasonal/` (holiday clip
   art mixed with a few photos), `naturalforces/`, `people/` and the rest.
2. `*_mirror.png` variants (mirror images of another stamp) are left out.
3. PNGs next to an `.svg` of the same name (rasterised vector art) are left out.
4. Unreadable files are skipped and counted; files without an alpha channel
   (RGB, L, palette without transparency) or with no transparent pixel cannot
   give a mask and are skipped and counted. Palette and grayscale-with-alpha
   stamps are converted to RGBA (`converted_*` counts them all, kept or not).
   Stamps named in `EXCLUDED_STAMPS` (a gradient-shaded clip-art button, a
   police-car lettering decal) pass the other rules but are left out.
5. Byte-identical files keep only the first (sorted) path.
6. Clip art: the fraction of fully opaque 2x2 pixel blocks whose four pixels
   have exactly the same colour ("flatness") must be at most 0.25. Photos
   measure 0.00-0.22 here, drawings 0.3-1.0 (flat fills). Three photos with
   large pure-black areas (the Mercury and crescent-moon stamps, a car wheel)
   are also left out by this rule.
7. At least half of the pixels with alpha > 0 must have alpha >= 128 (drops
   mostly see-through stamps such as a drinking glass), at least 400 such
   pixels, and the object's box aspect ratio at most 6 (so a 10% box share fits).

On Debian 12's tuxpaint-stamps-default 2022.06.04-1 the 802 PNGs give 296
objects: 470 outside the class folders, 4 mirror variants, 7 vector twins,
2 excluded by name, 15 clip art, 5 mostly translucent, 1 too small and
2 elongated (27 palette and grayscale stamps converted). The scan takes about
2 s. The counts are stored in the dataset's metadata
(`builder.info.metadata["stamp_counts"]`), with the objects of each class per
split (`["objects"]`) and the background files (`["backgrounds"]`).

Coarse classes (`COARSE_CLASSES`: folders -> class; objects on the Debian tree):

    birds               animals/birds                                     35
    fish_and_shellfish  animals/fish, animals/shellfish                   13
    small_animals       animals/insects, animals/amphibians, .../lizards  11
    mammals             animals/mammals, animals/marsupials               65
    fruit_and_nuts      food/fruit, food/nuts                             30
    vegetables          food/vegetables, food/spices                      19
    flowers             plants/flowers                                    25
    plants              plants (herbs, trees, mushrooms)                  13
    instruments         hobbies/music                                     10
    tools               household/tools, household/arttools               14
    household_objects   household, hobbies, clothes, medical              22
    vehicles            vehicles, military/vehicles                       19
    sports_equipment    sports                                             7
    space               space (planets, moon, spacecraft)                 13

Classes are drawn uniformly, so the examples are balanced across classes while
the objects per class are not. The "fine" scheme has one class per object (like
CUB's 200 species, here 296); its class names are the sorted stamp paths,
stored with the prepared data in `label.labels.txt`.

Backgrounds: `templates/*.jpg` (and .png) except `sheep.jpg` and
`jellyfish.jpg`, which show animals of the label classes; 17 photos remain.
Near-black letterbox borders are trimmed. Train and test share the background
photos but not the crops.

Configs (`<labels>[_heldout]_<size>`; the default is `coarse_224`):

    coarse_{64,112,224}          4000 train / 1000 test, 14 classes
    coarse_heldout_{64,112,224}  same, but 25% of each class's objects (75 of
                                 296, at least 2 per class) appear only in the
                                 test split: unseen objects
    fine_{64,112,224}            8000 train / 2000 test, one class per object
    coarse_natural_{64,112,224}  4000 train / 1000 test, 14 classes, the
                                 natural layout below (1-3 objects, `bbox` a
                                 sequence of boxes)

Natural layout (`layout="natural"`, `sample_layout`): objects of the sizes,
positions and numbers photos show, where the other configs place one small
object anywhere. Each image holds 1, 2 or 3 objects of the labelled class
(p = 0.7, 0.2, 0.1; distinct objects where the class has enough; a choice,
not a measurement), like an ILSVRC validation image with several annotated
instances. `bbox` is then a sequence with one box per object (the tight box
of that object's pasted `alpha >= 128`, clipped to the image) and
`segmentation_mask` their combined alpha, so the explanation metric's box
mask is the union of the labelled objects' boxes, as for ImageNet's XML boxes
(`dre_jax.data.pipelines`); no object of another class is pasted. Each
object's box share x (box area / image area) is drawn as
0.05 + 0.85 * Beta(1.0, 1.18), a distribution on [0.05, 0.90] of mean 0.44
whose density falls from the small shares to the large ones, and the stamp is
scaled so that its box, centred, would show share x (a box longer than the
image overhangs it, as in a close-up). Its centre is
0.5 + N(0, 0.3) * max(1 - extent, 0.25) per axis (extent: the object's side
over the image side), a centre bias that leaves large objects near the
middle and lets small ones wander, and the object may extend past the border:
draws are repeated until at least 60% of its alpha is inside the image, its
visible box share is within [0.05, 0.90], and its solid pixels overlap each
earlier object's by at most 20% of the smaller one's. Border cuts make the
visible boxes smaller than x; the mean 0.44 was chosen so that the visible
box shares have the mean of the average object scale of ILSVRC 2012, 0.358
(the ratio of box area to image area averaged per class; Sec. 2.3 of
ImageNet's "ILSVRC 2012 analysis" page,
https://image-net.org/challenges/LSVRC/2012/analysis; the challenge's paper,
Russakovsky et al., IJCV 2015, analyses the same object scale). The shape of
the distribution and the centre bias are choices that approximate this
spread of ImageNet boxes; they are not fitted to it.
Measured over the first 600 `coarse_natural_224` training images on the
Debian tree (834 boxes; `python scripts/composites_layout.py`, which also
draws results/composites_natural.jpg): box share quantiles 5% 0.067, 25% 0.15, 50% 0.31, 75% 0.52,
95% 0.76, maximum 0.86, mean 0.353; 30% of the images hold more than one
object; 46% of the boxes touch the border.

Measured builds (`python -m dre_jax.data.tuxpaint_composites --configs=...`)
on this project's 2-core CPU machine, shared with other jobs (load average
about 4), Debian tree, including the stamp scan:

    config       build (process CPU)  on disk
    coarse_224   67 s (52 s)          466 MB
    coarse_112   31 s (29 s)          136 MB
    coarse_64    29 s (25 s)           49 MB
    fine_224    138 s (102 s)         939 MB

Images and masks are PNG-encoded with Pillow at zlib level 1 (TFDS's own
TensorFlow encoder at level 6 made coarse_224 take about twice as long).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import os
import time
import zlib
from typing import Iterator, Sequence

from absl import logging
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

ROOT_ENV = "DRE_TUXPAINT_ROOT"
DEFAULT_ROOT = "/usr/share/tuxpaint"
# Where scripts/setup_env.sh unpacks the packages without root (`dpkg-deb -x`
# into the checkout's data/tuxpaint/), and the root inside it.
LOCAL_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "data", "tuxpaint")
LOCAL_ROOT = os.path.join(LOCAL_DIR, "usr", "share", "tuxpaint")
APT_COMMAND = (
    "apt-get update && apt-get install -y tuxpaint-stamps-default tuxpaint-data")

# Coarse class -> stamp folders (relative to `stamps/`); the longest matching
# folder prefix decides. The order fixes the label ids.
COARSE_CLASSES: dict[str, tuple[str, ...]] = {
    "birds": ("animals/birds",),
    "fish_and_shellfish": ("animals/fish", "animals/shellfish"),
    "small_animals": ("animals/insects", "animals/amphibians",
                      "animals/lizards"),
    "mammals": ("animals/mammals", "animals/marsupials"),
    "fruit_and_nuts": ("food/fruit", "food/nuts"),
    "vegetables": ("food/vegetables", "food/spices"),
    "flowers": ("plants/flowers",),
    "plants": ("plants",),
    "instruments": ("hobbies/music",),
    "tools": ("household/tools", "household/arttools"),
    "household_objects": ("household", "hobbies", "clothes", "medical"),
    "vehicles": ("vehicles", "military/vehicles"),
    "sports_equipment": ("sports",),
    "space": ("space",),
}
EXCLUDED_FOLDER_NAMES = ("cartoon", "toys")
# Stamps that pass the rules below but are not photos of one object: a clip-art
# button drawn with gradients, and the lettering decal of a police car.
EXCLUDED_STAMPS = ("clothes/button", "vehicles/emergency/sedan_police")
EXCLUDED_BACKGROUNDS = ("sheep.jpg", "jellyfish.jpg")

MAX_FLATNESS = 0.25          # clip-art rule (6. in the module docstring)
MIN_SOLID_FRACTION = 0.5     # share of alpha>0 pixels with alpha >= 128
MIN_SOLID_PIXELS = 400
MAX_ASPECT = 6.0
BOX_SHARE = (0.10, 0.60)     # object box area / image area
MAX_OUTSIDE = 0.10           # share of the object's alpha outside the image
# Natural layout (configs `coarse_natural_*`, see the module docstring).
NATURAL_SHARE = (0.05, 0.90)  # visible object box area / image area
# Mean of the drawn share: border cuts shrink the visible boxes, and 0.44
# gives visible box shares of mean 0.353 on the Debian tree, the ILSVRC 2012
# average object scale 0.358 (module docstring).
NATURAL_DRAWN_MEAN = 0.44
NATURAL_SHARE_BETA_A = 1.0    # Beta(a, b) on NATURAL_SHARE; b from the mean
NATURAL_CENTRE_SD = 0.3       # centre offset sd per axis, times the free room
NATURAL_MIN_ROOM = 0.25      # least centre spread factor (objects >= image)
NATURAL_MIN_VISIBLE = 0.6     # share of the object's alpha inside the image
NATURAL_MAX_OVERLAP = 0.2     # shared solid pixels / the smaller object's
NATURAL_TRIES = 100           # draws per object before the layout restarts
NATURAL_OBJECTS = (0.7, 0.2, 0.1)  # P(1, 2, 3 objects of the labelled class)
LAYOUTS = ("uniform", "natural")
CROP_SHARE = (0.5, 1.0)      # background crop side / background short side
HOLDOUT_FRACTION = 0.25
MAX_DRAWS = 1000
# Backgrounds are resampled bicubically; stamps bilinearly, whose non-negative
# weights keep the alpha and the (premultiplied) colours free of overshoot
# halos. Pillow antialiases both when downscaling.
BACKGROUND_RESAMPLE = Image.Resampling.BICUBIC
STAMP_RESAMPLE = Image.Resampling.BILINEAR

SPLITS = ("train", "test")


@dataclasses.dataclass(eq=False)
class TuxpaintCompositesConfig(tfds.core.BuilderConfig):
  """One composite dataset: image side, split sizes and label scheme.

  Attributes:
    image_size: side S of the square images and masks.
    num_train, num_test: number of examples per split.
    labels: "coarse" (COARSE_CLASSES) or "fine" (one class per object).
    holdout_objects: coarse only; HOLDOUT_FRACTION of each class's objects are
      used only by the test split.
    layout: "uniform" (one object, `sample_placement`) or "natural" (1-3
      objects of the class, `sample_layout`; `bbox` is then a sequence of
      boxes, one per object).
  """

  image_size: int = 224
  num_train: int = 4000
  num_test: int = 1000
  labels: str = "coarse"
  holdout_objects: bool = False
  layout: str = "uniform"

  def __post_init__(self):
    if self.layout not in LAYOUTS:
      raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got "
                       f"{self.layout!r}")
    if self.labels not in ("coarse", "fine"):
      raise ValueError(f"labels must be 'coarse' or 'fine', got {self.labels!r}")
    if self.holdout_objects and self.labels != "coarse":
      raise ValueError("holdout_objects needs labels='coarse': held-out fine "
                       "classes would have no training examples.")
    if self.image_size < 16:
      raise ValueError(f"image_size must be >= 16, got {self.image_size}")


def _make_configs() -> list[TuxpaintCompositesConfig]:
  configs = []
  for labels, holdout, num_train, num_test in (("coarse", False, 4000, 1000),
                                               ("coarse", True, 4000, 1000),
                                               ("fine", False, 8000, 2000)):
    for size in (224, 112, 64):
      name = f"{labels}{'_heldout' if holdout else ''}_{size}"
      configs.append(TuxpaintCompositesConfig(
          name=name, image_size=size, num_train=num_train, num_test=num_test,
          labels=labels, holdout_objects=holdout,
          description=(f"{size}px, {num_train}/{num_test} images, {labels} "
                       f"labels{', held-out test objects' if holdout else ''}")))
  for size in (224, 112, 64):
    configs.append(TuxpaintCompositesConfig(
        name=f"coarse_natural_{size}", image_size=size, num_train=4000,
        num_test=1000, labels="coarse", layout="natural",
        description=(f"{size}px, 4000/1000 images, coarse labels, 1-3 objects "
                     "with ImageNet-like sizes, centre-biased, cut by the "
                     "border")))
  return configs


@dataclasses.dataclass(frozen=True)
class Stamp:
  """One photographic cut-out.

  Attributes:
    name: path below `stamps/` without ".png", e.g. "animals/birds/crow".
    coarse: its COARSE_CLASSES name.
    rgba: uint8 [h, w, 4], cropped to the pixels with alpha > 0.
    mirrorable: False when its `.dat` file says `nomirror`.
  """

  name: str
  coarse: str
  rgba: np.ndarray
  mirrorable: bool


def _is_root(path: str) -> bool:
  return all(os.path.isdir(os.path.join(path, sub))
             for sub in ("stamps", "templates"))


def resolve_root(root: str | os.PathLike | None = None) -> str:
  """The Tux Paint root: `root`, else $DRE_TUXPAINT_ROOT, else DEFAULT_ROOT
  where it is installed, else LOCAL_ROOT (the packages unpacked without root)."""
  root = os.fspath(root or os.environ.get(ROOT_ENV) or "")
  if not root:
    root = next((r for r in (DEFAULT_ROOT, LOCAL_ROOT) if _is_root(r)),
                DEFAULT_ROOT)
  for sub in ("stamps", "templates"):
    if not os.path.isdir(os.path.join(root, sub)):
      raise FileNotFoundError(
          f"No Tux Paint {sub}/ folder under {root!r}. Install the files with "
          f"`{APT_COMMAND}`, or without root with `bash scripts/setup_env.sh` "
          f"(unpacks them into {LOCAL_DIR}), or point ${ROOT_ENV} (or the "
          "builder argument tuxpaint_root) at a tree with stamps/ and "
          "templates/.")
  return root


def coarse_class(folder: str) -> str | None:
  """The coarse class of a stamp folder (relative, '/'-separated), or None."""
  if set(folder.split("/")) & set(EXCLUDED_FOLDER_NAMES):
    return None
  best, best_len = None, -1
  for name, prefixes in COARSE_CLASSES.items():
    for prefix in prefixes:
      if (folder == prefix or folder.startswith(prefix + "/")) and (
          len(prefix) > best_len):
        best, best_len = name, len(prefix)
  return best


def flatness(rgba: np.ndarray) -> float:
  """Share of fully opaque 2x2 blocks whose four pixels have one exact colour.

  rgba: uint8 [h, w, 4]. Clip art (flat fills) scores high, photos near 0.
  """
  rgb, opaque = rgba[..., :3], rgba[..., 3] == 255
  corner = rgb[:-1, :-1]
  same = ((corner == rgb[1:, :-1]).all(-1) & (corner == rgb[:-1, 1:]).all(-1)
          & (corner == rgb[1:, 1:]).all(-1))
  blocks = opaque[:-1, :-1] & opaque[1:, :-1] & opaque[:-1, 1:] & opaque[1:, 1:]
  return float((same & blocks).sum() / max(int(blocks.sum()), 1))


def _read_rgba(path: str) -> tuple[np.ndarray | None, str]:
  """Decodes a stamp to uint8 RGBA [h, w, 4].

  Returns (rgba, note): note is "" for an RGBA file, the conversion made
  ("converted_palette", "converted_grayscale", "converted_other"), or, with
  rgba None, why the file is skipped ("unreadable", "no_alpha").
  """
  try:
    with Image.open(path) as im:
      im.load()
      mode, has_alpha = im.mode, ("A" in im.mode or
                                   "transparency" in im.info)
      if not has_alpha:
        return None, "no_alpha"
      rgba = np.asarray(im.convert("RGBA"))
  except (OSError, ValueError, SyntaxError) as e:  # PIL's decode errors
    logging.warning("Skipping unreadable stamp %s: %s", path, e)
    return None, "unreadable"
  if not (rgba[..., 3] < 255).any():
    return None, "no_alpha"
  if mode == "RGBA":
    return rgba, ""
  return rgba, ("converted_palette" if mode in ("P", "PA") else
                "converted_grayscale" if mode in ("L", "LA", "La") else
                "converted_other")


def _stamp_rejection(rgba: np.ndarray) -> str:
  """Rules 6-7 of the module docstring: "" to keep, else the reason."""
  if flatness(rgba) > MAX_FLATNESS:
    return "clip_art"
  alpha = rgba[..., 3]
  solid = alpha >= 128
  if solid.sum() < MIN_SOLID_FRACTION * (alpha > 0).sum():
    return "mostly_translucent"
  if solid.sum() < MIN_SOLID_PIXELS:
    return "too_small"
  rows, cols = np.nonzero(solid.any(1))[0], np.nonzero(solid.any(0))[0]
  h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
  if max(h, w) > MAX_ASPECT * min(h, w):
    return "elongated"
  return ""


def _crop_to_alpha(rgba: np.ndarray) -> np.ndarray:
  alpha = rgba[..., 3] > 0
  rows, cols = np.nonzero(alpha.any(1))[0], np.nonzero(alpha.any(0))[0]
  return np.ascontiguousarray(
      rgba[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])


def _mirrorable(png_path: str) -> bool:
  dat = png_path[:-4] + ".dat"
  if not os.path.exists(dat):
    return True
  with open(dat, encoding="utf-8", errors="replace") as f:
    return "nomirror" not in f.read().split()


def scan_stamps(root: str) -> tuple[list[Stamp], dict[str, int]]:
  """Finds and loads the photographic stamps under `root`/stamps.

  Returns the stamps sorted by name and a count per outcome ("found", "kept",
  and one entry per reason to skip or convert, see the module docstring).
  Raises ValueError (naming the counts) when no stamp is usable.
  """
  stamps_dir = os.path.join(root, "stamps")
  counts: dict[str, int] = {"found": 0}
  seen_digests: set[str] = set()
  stamps = []
  for dirpath, _, filenames in sorted(os.walk(stamps_dir)):
    folder = os.path.relpath(dirpath, stamps_dir).replace(os.sep, "/")
    stems = {os.path.splitext(f)[0] for f in filenames
             if f.lower().endswith(".svg")}
    for filename in sorted(f for f in filenames if f.lower().endswith(".png")):
      counts["found"] += 1
      stem, path = filename[:-4], os.path.join(dirpath, filename)
      label = coarse_class(folder)
      if label is None:
        outcome = "not_in_class_folders"
      elif f"{folder}/{stem}" in EXCLUDED_STAMPS:
        outcome = "excluded_by_name"
      elif stem.endswith("_mirror"):
        outcome = "mirror_variant"
      elif stem in stems:
        outcome = "vector_twin"
      else:
        with open(path, "rb") as f:
          digest = hashlib.sha256(f.read()).hexdigest()
        rgba, outcome = _read_rgba(path)
        if rgba is not None:
          if outcome:  # a conversion: count it, then apply the other rules
            counts[outcome] = counts.get(outcome, 0) + 1
          outcome = "duplicate" if digest in seen_digests else (
              _stamp_rejection(rgba))
          seen_digests.add(digest)
          if not outcome:
            stamps.append(Stamp(
                name=f"{folder}/{stem}",
                coarse=label, rgba=_crop_to_alpha(rgba),
                mirrorable=_mirrorable(path)))
            outcome = "kept"
      counts[outcome] = counts.get(outcome, 0) + 1
  if not stamps:
    raise ValueError(
        f"No usable photographic stamp under {stamps_dir!r} (counts: {counts})."
        f" Install the Tux Paint stamps with `{APT_COMMAND}` or point "
        f"${ROOT_ENV} at a tree with RGBA PNG stamps in class folders "
        f"({sorted(p for ps in COARSE_CLASSES.values() for p in ps)}).")
  return sorted(stamps, key=lambda s: s.name), counts


def _trim_dark_border(rgb: np.ndarray, level: int = 16) -> np.ndarray:
  """Drops edge rows/columns whose pixels are all darker than `level`."""
  bright = rgb.max(-1) >= level
  rows, cols = np.nonzero(bright.any(1))[0], np.nonzero(bright.any(0))[0]
  if not len(rows):
    return rgb
  return rgb[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def load_backgrounds(root: str) -> tuple[list[tuple[str, Image.Image]],
                                         dict[str, int]]:
  """Background photos under `root`/templates as (file name, RGB image).

  Unreadable files are skipped and counted; raises ValueError when none is left.
  """
  folder = os.path.join(root, "templates")
  counts = {"found": 0, "excluded": 0, "unreadable": 0, "kept": 0}
  backgrounds = []
  for name in sorted(os.listdir(folder)):
    if not name.lower().endswith((".jpg", ".jpeg", ".png")):
      continue
    counts["found"] += 1
    if name in EXCLUDED_BACKGROUNDS:
      counts["excluded"] += 1
      continue
    try:
      with Image.open(os.path.join(folder, name)) as im:
        rgb = np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as e:
      logging.warning("Skipping unreadable background %s: %s", name, e)
      counts["unreadable"] += 1
      continue
    backgrounds.append((name, Image.fromarray(_trim_dark_border(rgb))))
    counts["kept"] += 1
  if not backgrounds:
    raise ValueError(
        f"No readable background photo in {folder!r} (counts: {counts}). "
        f"Install them with `{APT_COMMAND}`.")
  return backgrounds, counts


def split_objects(stamps: Sequence[Stamp], labels: str, holdout: bool
                  ) -> tuple[list[str], dict[str, dict[int, list[Stamp]]]]:
  """Class names and, per split, the objects of each class id.

  With `holdout`, round(HOLDOUT_FRACTION * n) (at least 1, at most n - 1) of
  each class's n objects, picked by a seed made of the class name, go to the
  test split only; a class with fewer than 2 objects raises ValueError.
  """
  if labels == "fine":
    names = [s.name for s in stamps]
    per_class = {i: [s] for i, s in enumerate(stamps)}
    return names, {split: per_class for split in SPLITS}
  names = list(COARSE_CLASSES)
  per_class = {i: [s for s in stamps if s.coarse == name]
               for i, name in enumerate(names)}
  per_class = {i: objs for i, objs in per_class.items() if objs}
  if not holdout:
    return names, {split: per_class for split in SPLITS}
  out = {split: {} for split in SPLITS}
  for i, objs in per_class.items():
    if len(objs) < 2:
      raise ValueError(f"Class {names[i]!r} has {len(objs)} object(s); holding "
                       "out test objects needs at least 2.")
    n_test = min(max(round(HOLDOUT_FRACTION * len(objs)), 1), len(objs) - 1)
    rng = np.random.Generator(np.random.PCG64(zlib.crc32(names[i].encode())))
    test = set(rng.permutation(len(objs))[:n_test].tolist())
    out["test"][i] = [o for j, o in enumerate(objs) if j in test]
    out["train"][i] = [o for j, o in enumerate(objs) if j not in test]
  return names, out


def example_rng(config_name: str, split: str, index: int) -> np.random.Generator:
  """The example's generator: PCG64 seeded by (config name, split, index)."""
  entropy = [zlib.crc32(config_name.encode()), SPLITS.index(split), index]
  return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def _background_crop(background: Image.Image, size: int,
                     rng: np.random.Generator) -> np.ndarray:
  """A random square crop, resized to uint8 [size, size, 3], maybe mirrored."""
  w, h = background.size
  side = max(1, round(rng.uniform(*CROP_SHARE) * min(w, h)))
  x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
  crop = np.asarray(background.resize(
      (size, size), BACKGROUND_RESAMPLE, box=(x0, y0, x0 + side, y0 + side)))
  return crop[:, ::-1] if rng.random() < 0.5 else crop


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
  """Tight box (r0, c0, r1, c1), inclusive, of `mask >= 128`; None if empty."""
  solid = mask >= 128
  rows, cols = np.nonzero(solid.any(1))[0], np.nonzero(solid.any(0))[0]
  if not len(rows):
    return None
  return int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1])


@dataclasses.dataclass(frozen=True)
class Placement:
  """A scaled, maybe mirrored stamp and its top-left corner on the canvas.

  Attributes:
    rgba: uint8 [h, w, 4], the resampled stamp (RGB not premultiplied).
    top, left: canvas position of rgba[0, 0]; may be negative.
  """

  rgba: np.ndarray
  top: int
  left: int


def paste(placement: Placement, size: int) -> np.ndarray:
  """The placement's visible part on a transparent canvas, uint8 [S, S, 4]."""
  canvas = np.zeros((size, size, 4), np.uint8)
  h, w = placement.rgba.shape[:2]
  top, left = placement.top, placement.left
  y0, x0 = max(top, 0), max(left, 0)
  y1, x1 = min(top + h, size), min(left + w, size)
  if y1 > y0 and x1 > x0:
    canvas[y0:y1, x0:x1] = placement.rgba[y0 - top:y1 - top, x0 - left:x1 - left]
  return canvas


def sample_placement(stamp: Stamp, size: int, rng: np.random.Generator
                     ) -> Placement:
  """Draws the object's scale, mirror and position on a size x size image.

  The box share is drawn uniformly from BOX_SHARE (capped so that the object
  fits), and up to MAX_OUTSIDE of the scaled width/height may overhang a
  border. Draws are repeated until at most MAX_OUTSIDE of the object's alpha
  falls outside the image and the box of the pasted `alpha >= 128` covers a
  share of the image within BOX_SHARE.
  """
  h, w = stamp.rgba.shape[:2]
  for _ in range(MAX_DRAWS):
    share = rng.uniform(*BOX_SHARE)
    scaled = _scaled_stamp(stamp, min(np.sqrt(share * size * size / (h * w)),
                                      size / max(h, w)), rng)
    sh, sw = scaled.shape[:2]
    mx, my = int(MAX_OUTSIDE * sw), int(MAX_OUTSIDE * sh)
    placement = Placement(rgba=scaled,
                          top=int(rng.integers(-my, size - sh + my + 1)),
                          left=int(rng.integers(-mx, size - sw + mx + 1)))
    if _visible_alpha(placement, size, 1 - MAX_OUTSIDE, BOX_SHARE) is not None:
      return placement
  raise RuntimeError(f"Could not place stamp {stamp.name!r} ({w}x{h} px) on a "
                     f"{size}px image within {MAX_DRAWS} draws.")


def _scaled_stamp(stamp: Stamp, scale: float, rng: np.random.Generator
                  ) -> np.ndarray:
  """The stamp resized by `scale`, mirrored with p=0.5 where allowed: uint8
  [h, w, 4]."""
  h, w = stamp.rgba.shape[:2]
  sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
  rgba = stamp.rgba[:, ::-1] if stamp.mirrorable and rng.random() < 0.5 else (
      stamp.rgba)
  return np.asarray(Image.fromarray(rgba).resize((sw, sh), STAMP_RESAMPLE))


def _visible_alpha(placement: Placement, size: int, min_inside: float,
                   share_range: tuple[float, float]) -> np.ndarray | None:
  """The pasted alpha uint8 [S, S] if at least `min_inside` of the object's
  alpha falls inside the image and the box of its pasted `alpha >= 128` covers
  a share of the image within `share_range`; else None."""
  alpha = paste(placement, size)[..., 3]
  box = _box(alpha)
  if box is None or alpha.sum(dtype=np.int64) < min_inside * (
      placement.rgba[..., 3].sum(dtype=np.int64)):
    return None
  box_share = (box[2] - box[0] + 1) * (box[3] - box[1] + 1) / size**2
  return alpha if share_range[0] <= box_share <= share_range[1] else None


def visible_scale(h: int, w: int, share: float, size: int) -> float:
  """The scale of an h x w box whose part inside a size x size image covers
  `share` of it when the box is centred: min(sh, S) * min(sw, S) = share * S**2
  (a side longer than the image overhangs it, as in a close-up photo)."""
  scale = np.sqrt(share * size * size / (h * w))
  if max(h, w) * scale <= size:
    return scale
  return max(share * size / min(h, w), size / max(h, w))


def natural_share_beta() -> tuple[float, float]:
  """(a, b) of the Beta distribution whose image on NATURAL_SHARE (share =
  lo + (hi - lo) * x) has the mean NATURAL_DRAWN_MEAN: (1.0, 1.18)."""
  lo, hi = NATURAL_SHARE
  m = (NATURAL_DRAWN_MEAN - lo) / (hi - lo)
  return NATURAL_SHARE_BETA_A, NATURAL_SHARE_BETA_A * (1 - m) / m


def sample_layout(stamps: Sequence[Stamp], size: int,
                  rng: np.random.Generator) -> list[Placement]:
  """Places the stamps (in order) on a size x size image, the natural layout.

  Each object draws its box share from a Beta on NATURAL_SHARE
  (`natural_share_beta`), is scaled so that its box, centred, would cover that
  share of the image (`visible_scale`), draws a mirror (p=0.5 where allowed)
  and its centre 0.5 + N(0, NATURAL_CENTRE_SD) * max(1 - side, NATURAL_MIN_ROOM)
  per axis (image units; side: the object's extent along that axis), and is
  redrawn until at least NATURAL_MIN_VISIBLE of its alpha is inside the image,
  the box of its visible `alpha >= 128` covers a share within NATURAL_SHARE,
  and its solid pixels share at most NATURAL_MAX_OVERLAP of the smaller
  object's solid pixels with each object placed before it. An object that
  finds no place within NATURAL_TRIES draws restarts the whole layout.
  """
  for _ in range(MAX_DRAWS):
    placements = _try_layout(stamps, size, rng)
    if placements is not None:
      return placements
  raise RuntimeError(
      f"Could not place stamps {[s.name for s in stamps]} together on a "
      f"{size}px image within {MAX_DRAWS} layouts.")


def _try_layout(stamps: Sequence[Stamp], size: int, rng: np.random.Generator
                ) -> list[Placement] | None:
  """One attempt of `sample_layout`: None when an object finds no place
  within NATURAL_TRIES draws next to those placed before it."""
  a, b = natural_share_beta()
  lo, hi = NATURAL_SHARE
  placements, solids = [], []
  for stamp in stamps:
    h, w = stamp.rgba.shape[:2]
    for _ in range(NATURAL_TRIES):
      share = lo + (hi - lo) * rng.beta(a, b)
      scaled = _scaled_stamp(stamp, visible_scale(h, w, share, size), rng)
      sh, sw = scaled.shape[:2]
      room = 1 - np.array([sh, sw]) / size
      cy, cx = (0.5 + rng.normal(0, NATURAL_CENTRE_SD, 2) * np.maximum(
          room, NATURAL_MIN_ROOM)) * size
      placement = Placement(rgba=scaled, top=round(cy - sh / 2),
                            left=round(cx - sw / 2))
      alpha = _visible_alpha(placement, size, NATURAL_MIN_VISIBLE,
                             NATURAL_SHARE)
      if alpha is None:
        continue
      solid = alpha >= 128
      if all((solid & other).sum() <= NATURAL_MAX_OVERLAP * min(
          solid.sum(), other.sum()) for other in solids):
        placements.append(placement)
        solids.append(solid)
        break
    else:
      return None
  return placements


def alpha_blend(foreground: np.ndarray, background: np.ndarray,
                alpha: np.ndarray) -> np.ndarray:
  """round((a * fg + (255 - a) * bg) / 255) in integers, uint8 [S, S, 3].

  foreground, background: uint8 [S, S, 3]; alpha: uint8 [S, S].
  """
  a = alpha.astype(np.int32)[..., None]
  out = (a * foreground + (255 - a) * background.astype(np.int32) + 127) // 255
  return out.astype(np.uint8)


def composite(stamps: Sequence[Stamp], background: Image.Image, size: int,
              rng: np.random.Generator, layout: str = "uniform"
              ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int, int]]]:
  """One composite of the stamps pasted in order over a background crop.

  layout: "uniform" (one stamp, `sample_placement`) or "natural"
  (`sample_layout`). Returns the image uint8 [S, S, 3], the mask uint8 [S, S]
  (the pasted alphas combined like the colours: a + m * (255 - a) / 255,
  rounded) and each object's box (r0, c0, r1, c1), inclusive, of its own
  pasted `alpha >= 128`.
  """
  crop = _background_crop(background, size, rng)
  placements = (sample_layout(stamps, size, rng) if layout == "natural" else
                [sample_placement(stamp, size, rng) for stamp in stamps])
  image, mask, boxes = crop, np.zeros((size, size), np.uint8), []
  for placement in placements:
    canvas = paste(placement, size)
    alpha = canvas[..., 3]
    image = alpha_blend(canvas[..., :3], image, alpha)
    mask = (alpha.astype(np.int32) + (mask.astype(np.int32) * (255 - alpha)
                                      + 127) // 255).astype(np.uint8)
    boxes.append(_box(alpha))
  return image, mask, boxes


def num_objects(rng: np.random.Generator) -> int:
  """The number of objects of a natural-layout image, NATURAL_OBJECTS."""
  return 1 + int(rng.choice(len(NATURAL_OBJECTS), p=NATURAL_OBJECTS))


def make_example(config: TuxpaintCompositesConfig, split: str, index: int,
                 objects: dict[int, list[Stamp]], names: Sequence[str],
                 backgrounds: Sequence[tuple[str, Image.Image]]) -> dict:
  """Example `index` of `split`: the features, as numpy arrays and a BBox.

  objects: class id -> that split's objects (see `split_objects`).
  """
  size = config.image_size
  rng = example_rng(config.name, split, index)
  class_ids = sorted(objects)
  label = class_ids[int(rng.integers(len(class_ids)))]
  pool = objects[label]
  if config.layout == "natural":
    n = num_objects(rng)
    stamps = [pool[int(i)] for i in rng.choice(len(pool), n,
                                                 replace=len(pool) < n)]
  else:
    stamps = [pool[int(rng.integers(len(pool)))]]
  bg_name, background = backgrounds[int(rng.integers(len(backgrounds)))]
  image, mask, boxes = composite(stamps, background, size, rng, config.layout)
  bboxes = [tfds.features.BBox(ymin=r0 / size, xmin=c0 / size,
                               ymax=(r1 + 1) / size, xmax=(c1 + 1) / size)
            for r0, c0, r1, c1 in boxes]
  paths = "+".join(f"{stamp.name}.png" for stamp in stamps)
  return {
      "image": image,
      "image/filename": f"{split}/{index:06d}:{paths}@{bg_name}",
      "label": label,
      "label_name": names[label],
      "bbox": bboxes if config.layout == "natural" else bboxes[0],
      "segmentation_mask": mask[..., None],
  }


def png_bytes(image: np.ndarray) -> bytes:
  """uint8 [H, W, C] (C = 1 or 3) as PNG at zlib level 1.

  TFDS would encode with TensorFlow at level 6: half the build time goes there,
  for files only about 5% smaller.
  """
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
      buffer, format="PNG", compress_level=1)
  return buffer.getvalue()


# Run as a script, the module must not register a second "tuxpaint_composites"
# next to the one its package import may already have registered.
class TuxpaintComposites(tfds.core.GeneratorBasedBuilder,
                         skip_registration=__name__ == "__main__"):
  """Tux Paint photo cut-outs on real background photos, with exact masks."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = _make_configs()
  DEFAULT_CONFIG_NAME = "coarse_224"

  def __init__(self, *, tuxpaint_root: str | os.PathLike | None = None,
               **kwargs):
    self._tuxpaint_root = tuxpaint_root
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    size = config.image_size
    # Fine class names depend on the installed stamps: set at build time and
    # restored from label.labels.txt when the prepared data is read.
    label = (tfds.features.ClassLabel(names=list(COARSE_CLASSES))
             if config.labels == "coarse" else tfds.features.ClassLabel())
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__.split("\n\n")[0],
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(size, size, 3),
                                         encoding_format="png"),
            "image/filename": tfds.features.Text(),
            "label": label,
            "label_name": tfds.features.Text(),
            "bbox": (tfds.features.Sequence(tfds.features.BBoxFeature())
                     if config.layout == "natural" else
                     tfds.features.BBoxFeature()),
            "segmentation_mask": tfds.features.Image(shape=(size, size, 1),
                                                     encoding_format="png"),
        }),
        supervised_keys=("image", "label"),
        metadata=tfds.core.MetadataDict(),
        homepage="https://tuxpaint.org/",
        citation="Tux Paint stamps and templates, GPL-2 (Debian packages "
        "tuxpaint-stamps-default, tuxpaint-data).",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Everything is read from the installed Tux Paint files.
    config = self.builder_config
    root = resolve_root(self._tuxpaint_root)
    start = time.perf_counter()
    stamps, stamp_counts = scan_stamps(root)
    backgrounds, background_counts = load_backgrounds(root)
    logging.info("Tux Paint stamps under %s: %s; backgrounds: %s (%.1f s).",
                 root, stamp_counts, background_counts,
                 time.perf_counter() - start)
    names, objects = split_objects(stamps, config.labels, config.holdout_objects)
    if config.labels == "fine":
      self.info.features["label"].names = names
    self.info.metadata.update(
        stamp_counts=stamp_counts, background_counts=background_counts,
        backgrounds=[name for name, _ in backgrounds],
        objects={split: {names[i]: [s.name for s in objs]
                         for i, objs in per_class.items()}
                 for split, per_class in objects.items()})
    sizes = {"train": config.num_train, "test": config.num_test}
    return {split: self._generate_examples(split, sizes[split], objects[split],
                                           names, backgrounds)
            for split in SPLITS}

  def _generate_examples(self, split: str, num_examples: int,
                         objects: dict[int, list[Stamp]], names: list[str],
                         backgrounds: list[tuple[str, Image.Image]]
                         ) -> Iterator[tuple[int, dict]]:
    for index in range(num_examples):
      example = make_example(self.builder_config, split, index, objects,
                             names, backgrounds)
      for key in ("image", "segmentation_mask"):
        example[key] = png_bytes(example[key])
      yield index, example


def main(argv: Sequence[str] | None = None) -> None:
  """Builds the configs named by --configs and prints each build time."""
  parser = argparse.ArgumentParser(description=main.__doc__)
  parser.add_argument("--configs", default="coarse_224",
                      help="comma-separated config names")
  parser.add_argument("--data_dir", default=None,
                      help="TFDS data dir (default: TFDS's)")
  parser.add_argument("--tuxpaint_root", default=None,
                      help=f"default: ${ROOT_ENV}, else {DEFAULT_ROOT}, "
                      f"else {LOCAL_ROOT}")
  args = parser.parse_args(argv)
  for name in args.configs.split(","):
    start = time.perf_counter()
    builder = TuxpaintComposites(config=name, data_dir=args.data_dir,
                                 tuxpaint_root=args.tuxpaint_root)
    if not builder.is_prepared():
      print(f"{name}: building {builder.data_dir} (minutes) ...", flush=True)
    builder.download_and_prepare()
    print(f"{name}: {builder.info.splits} in "
          f"{time.perf_counter() - start:.1f} s -> {builder.data_dir}")


if __name__ == "__main__":
  main()
