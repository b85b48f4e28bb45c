"""ILSVRC2012 validation bounding boxes, read from their Pascal-VOC XML files.

The boxes come from `ILSVRC2012_bbox_val_v3.tgz` (image-net.org, ILSVRC2012
"Validation bounding box annotations (all tasks)", 2.2 MB), one file per
image, e.g.
`val/ILSVRC2012_val_00000001.xml`:

    <annotation>
      <filename>ILSVRC2012_val_00000001</filename>
      <size><width>500</width><height>375</height><depth>3</depth></size>
      <object><name>n01751748</name>
        <bndbox><xmin>111</xmin><ymin>108</ymin>
                <xmax>441</xmax><ymax>193</ymax></bndbox>
      </object>
      ...more <object> entries...
    </annotation>

Coordinates are normalised by dividing by the width/height given in `<size>`
and clipped to [0, 1], as TensorFlow's ImageNet preparation scripts
(`process_bounding_boxes.py`) do; a box given with min > max is reordered.
The paper (Sec. 5.3, M_E) evaluates on validation images with these boxes.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np

BOXES_TARBALL = "ILSVRC2012_bbox_val_v3.tgz"
_GET_BOXES = (
    f"download https://image-net.org/data/ILSVRC/2012/{BOXES_TARBALL} (an "
    "image-net.org login is needed) and extract it into the boxes directory")


def read_box_file(path: str) -> np.ndarray:
  """One annotation file -> float32 [K, 4] normalised [ymin, xmin, ymax, xmax].

  K >= 1 (one row per `<object>`). Raises FileNotFoundError for a missing file
  and ValueError for a file without a usable `<size>` or without boxes.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no ImageNet box file at {path}; {_GET_BOXES}")
  root = ET.parse(path).getroot()
  size = root.find("size")
  width = float(size.findtext("width", "0")) if size is not None else 0.0
  height = float(size.findtext("height", "0")) if size is not None else 0.0
  if width <= 0 or height <= 0:
    raise ValueError(f"{path}: <size> must give a positive <width> and "
                     f"<height>, got width={width}, height={height}")
  boxes = []
  for bndbox in root.iter("bndbox"):
    xmin, ymin, xmax, ymax = (float(bndbox.findtext(tag))
                              for tag in ("xmin", "ymin", "xmax", "ymax"))
    ys = sorted((ymin / height, ymax / height))
    xs = sorted((xmin / width, xmax / width))
    boxes.append([ys[0], xs[0], ys[1], xs[1]])
  if not boxes:
    raise ValueError(f"{path}: no <object><bndbox> entry")
  return np.clip(np.asarray(boxes, np.float32), 0.0, 1.0)


def read_box_dir(boxes_dir: str) -> dict[str, np.ndarray]:
  """All `*.xml` files under `boxes_dir` (searched recursively).

  Returns {file stem, e.g. "ILSVRC2012_val_00000001": float32 [K, 4]}; the stem
  matches the TFDS `imagenet2012` feature `file_name` without its extension.
  Raises FileNotFoundError if the directory is missing or holds no XML file.
  """
  if not os.path.isdir(boxes_dir):
    raise FileNotFoundError(
        f"the ImageNet boxes directory {boxes_dir} does not exist; "
        f"{_GET_BOXES}")
  boxes = {}
  for folder, _, files in os.walk(boxes_dir):
    for name in files:
      stem, ext = os.path.splitext(name)
      if ext.lower() == ".xml":
        boxes[stem] = read_box_file(os.path.join(folder, name))
  if not boxes:
    raise FileNotFoundError(
        f"no .xml box file under {boxes_dir}; {_GET_BOXES}")
  return boxes
