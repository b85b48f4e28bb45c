"""Reading a user's photos into the classifier's [0, 1] RGB input, robustly.

    paths, problems = images.expand(["photos/", "cat.jpg", "shots/*.png"])
    image = images.load(path)                  # [H, W, 3] float32 in [0, 1]
    crop = images.resize_and_crop(image, 224)  # [224, 224, 3]

What a file may be (Pillow decodes it): JPEG, PNG, WebP, BMP, TIFF, GIF (first
frame) and anything else Pillow reads, of any size. Every mode becomes RGB:

* EXIF orientation is applied first (`ImageOps.exif_transpose`), so a portrait
  shot from a phone is upright;
* greyscale ("1", "L") is repeated over the three channels; palette images ("P")
  take their palette colours;
* 16-bit greyscale ("I;16*", and "I" holding 16-bit values) is divided by
  65535, keeping its depth; 16-bit RGB files are reduced to 8 bits by Pillow
  itself; 32-bit float greyscale ("F") is taken as [0, 1] and clipped;
* CMYK (and YCbCr, LAB, HSV) go through Pillow's conversion to RGB;
* transparency (RGBA, LA, PA, a palette or greyscale with a transparent colour)
  is composited on `background`, white by default:
  `rgb * alpha + background * (1 - alpha)`.

Size policy (`resize_and_crop`, torchvision's ImageNet evaluation transform, the
one `dre_jax.data.pipelines` uses): the shorter side is resized to
`round(size / crop_fraction)` (bilinear with antialiasing, Pillow's filter) and
the centre `size x size` square is kept. `crop_fraction=1` keeps the whole
shorter side. `size` must be a multiple of 32 for DRE's generator.

A file that cannot be used raises `ImageError` whose message names the file and
the reason (missing, a directory, unreadable, empty, not an image, truncated,
too large), so a batch can report it on one line and go on.
"""

from __future__ import annotations

import glob
import os
from typing import Iterable, Sequence

import numpy as np
from PIL import Image
from PIL import ImageOps

# Extensions picked up when a directory is given (an explicit file is always tried).
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
WHITE = (1.0, 1.0, 1.0)
EVAL_CROP_FRACTION = 0.875  # torchvision's Resize(256) + CenterCrop(224)

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


class ImageError(ValueError):
  """A file that cannot be explained: `path` and a one-line `reason`."""

  def __init__(self, path: str, reason: str):
    super().__init__(f"{path}: {reason}")
    self.path = str(path)
    self.reason = reason


def expand(inputs: Iterable[str | os.PathLike]) -> tuple[list[str], list[ImageError]]:
  """Files, directories and glob patterns -> (image paths, problems).

  A directory contributes its files with an image extension (`EXTENSIONS`,
  any case), recursively, sorted; a glob pattern (`*`, `?`, `[`, `**`) its
  matches, sorted; anything else is taken as a file and tried as an image
  whatever its extension. Paths that match nothing become problems, not
  exceptions. Each path appears once, in the order given.
  """
  paths: list[str] = []
  problems: list[ImageError] = []
  for item in map(os.fspath, inputs):
    if os.path.isdir(item):
      found = sorted(
          os.path.join(root, name)
          for root, _, names in os.walk(item) for name in names
          if name.lower().endswith(EXTENSIONS))
      if not found:
        problems.append(ImageError(item, "directory holds no image files "
                                   f"({', '.join(EXTENSIONS)})"))
      paths += found
    elif glob.has_magic(item) and not os.path.exists(item):
      found = sorted(p for p in glob.glob(item, recursive=True)
                     if not os.path.isdir(p))
      if not found:
        problems.append(ImageError(item, "no file matches this pattern"))
      paths += found
    else:
      paths.append(item)
  seen: set[str] = set()
  unique = []
  for p in paths:
    key = os.path.abspath(p)
    if key not in seen:
      seen.add(key)
      unique.append(p)
  return unique, problems


def _open(path: str, min_side: int | None = None) -> Image.Image:
  """Opens and fully decodes `path`; every failure is an ImageError.

  min_side: JPEGs are decoded at a reduced scale (Pillow's `draft`) that keeps
    at least this many pixels on both sides.
  """
  if not os.path.exists(path):
    raise ImageError(path, "no such file")
  if os.path.isdir(path):
    raise ImageError(path, "is a directory with no images")
  try:
    if os.path.getsize(path) == 0:
      raise ImageError(path, "empty file (0 bytes)")
    image = Image.open(path)
  except ImageError:
    raise
  except Image.DecompressionBombError as e:
    raise ImageError(path, f"too large to decode safely ({e})") from None
  except PermissionError:
    raise ImageError(path, "permission denied (cannot read the file)") from None
  except Image.UnidentifiedImageError:
    raise ImageError(path, "not an image Pillow can read (unknown format)"
                     ) from None
  except OSError as e:
    raise ImageError(path, f"cannot read the file ({e.strerror or e})") from None
  try:
    if min_side and image.format == "JPEG":
      image.draft(image.mode, (min_side, min_side))
    image.load()
  except Image.DecompressionBombError as e:
    image.close()
    raise ImageError(path, f"too large to decode safely ({e})") from None
  except (OSError, SyntaxError, ValueError, EOFError) as e:
    image.close()
    text = str(e) or "early end of file"
    kind = "truncated or damaged" if (
        "truncated" in text or isinstance(e, EOFError)) else "damaged"
    raise ImageError(path, f"{kind} {image.format} file ({text})") from None
  return image


def to_rgb(image: Image.Image, background: Sequence[float] = WHITE) -> np.ndarray:
  """A decoded Pillow image of any mode -> [H, W, 3] float32 in [0, 1]."""
  image = ImageOps.exif_transpose(image)
  mode = image.mode
  if mode in _SIXTEEN_BIT or mode == "I":
    grey = np.asarray(image, dtype=np.float64)
    if mode == "I" and grey.max(initial=0) > 65535:
      raise ValueError("32-bit integer image with values above 65535: its scale "
                       "is unknown; save it as 8- or 16-bit")
    grey = grey / 65535.0
    return np.repeat(grey[..., None], 3, axis=-1).astype(np.float32)
  if mode == "F":
    grey = np.clip(np.nan_to_num(np.asarray(image, np.float32)), 0, 1)
    return np.repeat(grey[..., None], 3, axis=-1)
  has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
      "transparency" in image.info)
  if has_alpha:
    rgba = np.asarray(image.convert("RGBA"), np.float32) / 255.0
    alpha = rgba[..., 3:]
    bg = np.asarray(background, np.float32)
    return rgba[..., :3] * alpha + bg * (1.0 - alpha)
  return np.asarray(image.convert("RGB"), np.float32) / 255.0


def load(path: str | os.PathLike, background: Sequence[float] = WHITE,
         min_side: int | None = None) -> np.ndarray:
  """Reads one image file: [H, W, 3] float32 in [0, 1], upright.

  background: RGB in [0, 1] under transparent pixels.
  min_side: only this many pixels are needed on the shorter side; JPEGs are
    then decoded at a reduced scale that still has at least as many.
  Raises:
    ImageError: the file is missing, unreadable, empty, not an image,
      truncated or too large; the message names the file and the reason.
  """
  path = os.fspath(path)
  image = _open(path, min_side)
  try:
    return to_rgb(image, background)
  except (ValueError, OSError) as e:
    raise ImageError(path, f"cannot convert {image.mode} to RGB ({e})") from None
  finally:
    image.close()


def resize_and_crop(image: np.ndarray, size: int,
                    crop_fraction: float = EVAL_CROP_FRACTION) -> np.ndarray:
  """[H, W, 3] float in [0, 1] -> [size, size, 3] float32: resize, centre crop.

  The shorter side goes to `round(size / crop_fraction)` and the longer to
  `int(that * long / short)` (torchvision's `Resize`), bilinear with Pillow's
  antialiasing filter on each channel in float32; then the centre square is
  cut (offsets rounded half to even, as torchvision's `CenterCrop`).
  """
  if not 0 < crop_fraction <= 1:
    raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
  if size <= 0:
    raise ValueError(f"size must be positive, got {size}")
  h, w = image.shape[:2]
  short = max(size, int(round(size / crop_fraction)))
  if h <= w:
    new_h, new_w = short, int(short * w / h)
  else:
    new_h, new_w = int(short * h / w), short
  new_h, new_w = max(new_h, size), max(new_w, size)
  channels = [
      np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], np.float32)
                                 ).resize((new_w, new_h), Image.BILINEAR))
      for c in range(3)]
  resized = np.stack(channels, axis=-1)
  top = int(round((new_h - size) / 2.0))
  left = int(round((new_w - size) / 2.0))
  return np.clip(resized[top:top + size, left:left + size], 0, 1).astype(np.float32)
