"""scripts/natural_photos.py: hand-drawn boxes follow the photo through explain.py's crop."""

import json
import os

import numpy as np
import pytest

import util


@pytest.fixture(scope="module")
def script():
  return util.load_module(os.path.join(util.REPO, "scripts", "natural_photos.py"))


def test_box_mask_is_the_union_of_fractional_boxes(script):
  mask = script.box_mask((100, 200), [[0.25, 0.1, 0.5, 0.9], [0.4, 0.0, 0.6, 0.2]])
  expected = np.zeros((100, 200), np.float32)
  expected[10:90, 50:100] = 1
  expected[0:20, 80:120] = 1
  np.testing.assert_array_equal(mask, expected)


def test_boxes_are_cropped_like_the_photo_and_missing_photos_skipped(script, tmp_path):
  boxes = tmp_path / "boxes.json"
  boxes.write_text(json.dumps({"photos": [
      {"source": "skimage:coffee.png", "object": "cup", "boxes": [[0.28, 0.03, 0.71, 0.78]]},
      {"source": "opencv:no_such_photo.jpg", "object": "x", "boxes": [[0, 0, 1, 1]]}]}))
  names, objects, images, masks, skipped = script.load_photos(str(boxes), 64)
  assert names == ["coffee.png"] and objects == ["cup"]
  assert skipped == ["opencv:no_such_photo.jpg"]
  assert images.shape == (1, 64, 64, 3) and masks.shape == (1, 64, 64)
  # coffee.png is 600 x 400: resized to 109 x 73 (shorter side 64 / 0.875),
  # centre crop from (top 4, left 22); the box's columns 168..426 of 600 land
  # on 30.5..77.4 of 109, i.e. 8.5..55.4 of the crop; rows 12..312 of 400 on
  # 2.2..56.9 of 73, i.e. 0..52.9 of the crop.
  cols = np.flatnonzero(masks[0].any(axis=0))
  rows = np.flatnonzero(masks[0].any(axis=1))
  assert abs(cols[0] - 8.5) <= 1 and abs(cols[-1] + 1 - 55.4) <= 1
  assert rows[0] == 0 and abs(rows[-1] + 1 - 52.9) <= 1


def test_unknown_photo_source_is_named(script):
  with pytest.raises(ValueError, match="skimage"):
    script.resolve("flickr:cat.jpg")
