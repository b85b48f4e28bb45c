"""Image, box and mask transforms of the input pipelines (TensorFlow).

Every transform is a `Geometry`: crop a window of the decoded image, resize it,
crop again and maybe flip. The same geometry is applied to the image, to a
segmentation mask (stacked as a fourth channel, so it is resampled identically)
and to the bounding boxes, which are then rasterised into a box mask.

* Evaluation (`eval_geometry`), as torchvision's `Resize(resize_size)` followed
  by `CenterCrop(image_size)`: the shorter side goes to `resize_size`, the
  longer to `int(resize_size * long / short)`, and the centre crop starts at
  `round((resized - image_size) / 2)` (round half to even, as Python's `round`).
* Training (`train_geometry`), as torchvision's `RandomResizedCrop(image_size,
  scale=(0.08, 1), ratio=(3/4, 4/3))` followed by `RandomHorizontalFlip()`:
  ten candidate windows, the first that fits is used, else the centre window
  with the ratio clamped. Randomness comes from a stateless seed only.

Resizing is bilinear with antialiasing (a triangle filter, as PIL and
torchvision's `antialias=True`), with half-pixel centres.

Coordinates: a pixel (i, j) covers [i, i + 1) x [j, j + 1); its centre is
(i + 0.5, j + 0.5). Boxes are `[ymin, xmin, ymax, xmax]`, normalised to [0, 1]
on input, in output pixels after `transform_boxes`. A pixel belongs to the box
mask iff its centre lies in `[ymin, ymax) x [xmin, xmax)` of at least one box,
so an empty or inverted box covers nothing and two boxes that share an edge
never both claim the pixels along it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import tensorflow as tf

RRC_SCALE = (0.08, 1.0)
RRC_RATIO = (3.0 / 4.0, 4.0 / 3.0)
RRC_ATTEMPTS = 10


class Geometry(NamedTuple):
  """crop window (y, x, h, w) -> resize to (resize_h, resize_w) -> crop at
  (top, left) to the output size -> horizontal flip if `flip`. int32 scalars
  and a bool scalar."""

  y: tf.Tensor
  x: tf.Tensor
  h: tf.Tensor
  w: tf.Tensor
  resize_h: tf.Tensor
  resize_w: tf.Tensor
  top: tf.Tensor
  left: tf.Tensor
  flip: tf.Tensor


def decode_rgb(encoded: tf.Tensor) -> tf.Tensor:
  """Encoded JPEG/PNG/GIF/BMP bytes -> uint8 [H, W, 3].

  Grayscale images are replicated to three channels and the alpha channel of
  RGBA images is dropped.
  """
  return tf.io.decode_image(encoded, channels=3, expand_animations=False)


def eval_geometry(image_hw: tf.Tensor, image_size: int,
                  resize_size: int) -> Geometry:
  """Resize the shorter side to `resize_size`, centre-crop `image_size`.

  image_hw: int32 [2], the decoded image's (height, width).
  """
  if resize_size < image_size:
    raise ValueError(
        f"resize_size ({resize_size}) must be at least image_size "
        f"({image_size}): the centre crop is taken after the resize")
  h, w = image_hw[0], image_hw[1]
  # torchvision: new_long = int(size * long / short), in float64.
  long_side = tf.cast(
      tf.floor(tf.cast(resize_size * tf.maximum(h, w), tf.float64)
               / tf.cast(tf.minimum(h, w), tf.float64)), tf.int32)
  resize_h = tf.where(h <= w, resize_size, long_side)
  resize_w = tf.where(h <= w, long_side, resize_size)

  def centre(resized):  # round half to even, as torchvision's CenterCrop.
    return tf.cast(tf.round(tf.cast(resized - image_size, tf.float64) / 2.0),
                   tf.int32)

  zero = tf.constant(0, tf.int32)
  return Geometry(zero, zero, h, w, resize_h, resize_w, centre(resize_h),
                  centre(resize_w), tf.constant(False))


def train_geometry(image_hw: tf.Tensor, image_size: int,
                   seed: tf.Tensor) -> Geometry:
  """Random resized crop and horizontal flip, as torchvision's.

  image_hw: int32 [2]; seed: a stateless seed, int32 or int64 [2].
  """
  seeds = tf.random.experimental.stateless_split(seed, num=6)
  h = tf.cast(image_hw[0], tf.float32)
  w = tf.cast(image_hw[1], tf.float32)
  area = h * w * tf.random.stateless_uniform(
      [RRC_ATTEMPTS], seeds[0], RRC_SCALE[0], RRC_SCALE[1])
  ratio = tf.exp(tf.random.stateless_uniform(
      [RRC_ATTEMPTS], seeds[1], math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1])))
  cand_w = tf.round(tf.sqrt(area * ratio))  # round half to even, as Python.
  cand_h = tf.round(tf.sqrt(area / ratio))
  fits = (cand_w > 0) & (cand_w <= w) & (cand_h > 0) & (cand_h <= h)
  first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)

  # No candidate fits: the whole image, its aspect ratio clamped to RRC_RATIO.
  image_ratio = w / h
  fallback_w = tf.where(image_ratio > RRC_RATIO[1],
                        tf.round(h * RRC_RATIO[1]), w)
  fallback_h = tf.where(image_ratio < RRC_RATIO[0],
                        tf.round(w / RRC_RATIO[0]), h)
  any_fits = tf.reduce_any(fits)
  crop_h = tf.cast(tf.where(any_fits, cand_h[first], fallback_h), tf.int32)
  crop_w = tf.cast(tf.where(any_fits, cand_w[first], fallback_w), tf.int32)

  room_h = image_hw[0] - crop_h
  room_w = image_hw[1] - crop_w
  # Uniform integers in [0, room]; maxval is exclusive.
  rand_y = tf.random.stateless_uniform([], seeds[2], 0, room_h + 1, tf.int32)
  rand_x = tf.random.stateless_uniform([], seeds[3], 0, room_w + 1, tf.int32)
  crop_y = tf.where(any_fits, rand_y, room_h // 2)
  crop_x = tf.where(any_fits, rand_x, room_w // 2)
  flip = tf.random.stateless_uniform([], seeds[4]) < 0.5
  zero = tf.constant(0, tf.int32)
  return Geometry(crop_y, crop_x, crop_h, crop_w, tf.constant(image_size),
                  tf.constant(image_size), zero, zero, flip)


def apply_geometry(pixels: tf.Tensor, geometry: Geometry,
                   image_size: int) -> tf.Tensor:
  """pixels: float32 [H, W, C] -> float32 [image_size, image_size, C]."""
  g = geometry
  out = pixels[g.y:g.y + g.h, g.x:g.x + g.w]
  out = tf.image.resize(out, tf.stack([g.resize_h, g.resize_w]),
                        method="bilinear", antialias=True)
  out = out[g.top:g.top + image_size, g.left:g.left + image_size]
  out = tf.cond(g.flip, lambda: out[:, ::-1], lambda: out)
  return tf.ensure_shape(out, [image_size, image_size, pixels.shape[-1]])


def transform_boxes(boxes: tf.Tensor, image_hw: tf.Tensor, geometry: Geometry,
                    image_size: int) -> tf.Tensor:
  """Boxes through the same geometry as the pixels.

  boxes: float32 [K, 4] normalised [ymin, xmin, ymax, xmax] of the decoded
  image; image_hw: int32 [2]. Returns float32 [K, 4] in output pixels,
  clipped to [0, image_size].
  """
  g = geometry
  f32 = lambda t: tf.cast(t, tf.float32)
  hw = f32(image_hw)
  origin = tf.stack([f32(g.y), f32(g.x)])
  scale = tf.stack([f32(g.resize_h) / f32(g.h), f32(g.resize_w) / f32(g.w)])
  offset = tf.stack([f32(g.top), f32(g.left)])
  corners = tf.reshape(boxes, [-1, 2, 2])  # [K, (min, max), (y, x)]
  corners = (corners * hw - origin) * scale - offset
  corners = tf.clip_by_value(corners, 0.0, float(image_size))
  ys, xs = corners[..., 0], corners[..., 1]
  xs = tf.cond(g.flip, lambda: image_size - xs[:, ::-1], lambda: xs)
  return tf.stack([ys[:, 0], xs[:, 0], ys[:, 1], xs[:, 1]], axis=-1)


def box_mask(boxes: tf.Tensor, image_size: int) -> tf.Tensor:
  """Union of boxes as a mask: float32 [image_size, image_size] in {0, 1}.

  boxes: float32 [K, 4] [ymin, xmin, ymax, xmax] in pixels; a pixel is in when
  its centre is in [ymin, ymax) x [xmin, xmax) of some box (K may be 0).
  """
  centres = tf.range(image_size, dtype=tf.float32) + 0.5
  inside_y = ((centres >= boxes[:, 0:1]) & (centres < boxes[:, 2:3]))  # [K, S]
  inside_x = ((centres >= boxes[:, 1:2]) & (centres < boxes[:, 3:4]))
  inside = inside_y[:, :, None] & inside_x[:, None, :]
  return tf.cast(tf.reduce_any(inside, axis=0), tf.float32)
