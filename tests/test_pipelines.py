"""Input pipelines: transforms against torchvision and hand-computed masks, the
ImageNet box reader, CUB/ImageNet/Places365 on `tfds.testing.mock_data`, and
determinism, sharding, padding and resuming on a small TFDS dataset prepared
on disk."""

import functools
import os

import numpy as np
import pytest
from scipy import stats

# torchvision before TensorFlow: importing torchvision (through triton's
# libtriton) after TensorFlow's libraries are loaded crashes the interpreter.
try:
  import torch
  from torchvision import transforms as tv_transforms
  from torchvision.transforms.v2 import functional as tvf
except ImportError:  # The optional "parity" extra is not installed.
  torch = None

import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from tensorflow_datasets.testing import mocking  # noqa: E402

from dre_jax.data import imagenet_boxes  # noqa: E402
from dre_jax.data import pipelines  # noqa: E402
from dre_jax.data import transforms  # noqa: E402
import util  # noqa: E402

needs_torchvision = pytest.mark.skipif(
    torch is None, reason="needs torchvision (pip install -e '.[parity]')")
NUM_MOCK = 5  # Examples per split in the mocked TFDS datasets.


# --------------------------------------------------------------------------
# Transforms.


def _geometry_np(g: transforms.Geometry) -> dict:
  return {k: v.numpy() for k, v in g._asdict().items()}


def test_known_box_gives_known_mask_after_resize_and_crop():
  # 40 x 60 image, shorter side 40 -> 20 (scale 1/2), width -> int(20*60/40)
  # = 30, centre crop 16: top = round(4 / 2) = 2, left = round(14 / 2) = 7.
  # Box rows [8, 24), cols [20, 44) -> rows [4 - 2, 12 - 2), cols [10 - 7,
  # 22 - 7).
  hw = tf.constant([40, 60])
  box = tf.constant([[8 / 40, 20 / 60, 24 / 40, 44 / 60]])
  geometry = transforms.eval_geometry(hw, image_size=16, resize_size=20)
  assert _geometry_np(geometry) == dict(
      y=0, x=0, h=40, w=60, resize_h=20, resize_w=30, top=2, left=7,
      flip=False)
  expected = np.zeros((16, 16), np.float32)
  expected[2:10, 3:15] = 1.0
  mask = transforms.box_mask(
      transforms.transform_boxes(box, hw, geometry, 16), 16).numpy()
  np.testing.assert_array_equal(mask, expected)

  # The pixels go where the box goes: an image that is 1 inside the box.
  image = np.zeros((40, 60, 1), np.float32)
  image[8:24, 20:44] = 1.0
  pixels = transforms.apply_geometry(tf.constant(image), geometry, 16).numpy()
  np.testing.assert_array_equal((pixels[..., 0] > 0.5).astype(np.float32),
                                expected)

  # Flipped: column x -> 16 - x, so cols [3, 15) -> [1, 13).
  flipped = geometry._replace(flip=tf.constant(True))
  mask = transforms.box_mask(
      transforms.transform_boxes(box, hw, flipped, 16), 16).numpy()
  np.testing.assert_array_equal(mask, expected[:, ::-1])
  np.testing.assert_array_equal(mask[2:10, 1:13], 1.0)
  assert mask.sum() == 8 * 12


def test_box_mask_union_clipping_and_pixel_centres():
  boxes = tf.constant([[0.0, 0.0, 2.0, 2.0],     # rows 0-1, cols 0-1
                       [1.0, 3.5, 2.5, 5.5],     # row 1, cols 3-4: centres
                                                 # on ymax are out, on xmin in
                       [-3.0, 7.0, 9.0, 99.0],   # clipped: rows 0-7, col 7
                       [4.0, 4.0, 4.0, 6.0],     # empty
                       [5.0, 2.0, 3.0, 4.0]])    # inverted: empty
  boxes = tf.clip_by_value(boxes, 0.0, 8.0)
  expected = np.zeros((8, 8), np.float32)
  expected[0:2, 0:2] = 1
  expected[1:2, 3:5] = 1
  expected[0:8, 7] = 1
  np.testing.assert_array_equal(transforms.box_mask(boxes, 8).numpy(), expected)
  assert transforms.box_mask(tf.zeros([0, 4]), 8).numpy().sum() == 0


@needs_torchvision
@pytest.mark.parametrize("hw",
                         [(37, 55), (55, 37), (40, 62), (30, 30), (20, 90)])
def test_eval_transform_matches_torchvision_resize_centre_crop(hw):
  rng = np.random.default_rng(hw[0] * 100 + hw[1])
  image = rng.random((*hw, 3), dtype=np.float32)
  geometry = transforms.eval_geometry(tf.constant(hw), 16, 20)
  ours = transforms.apply_geometry(tf.constant(image), geometry, 16).numpy()
  theirs = tvf.center_crop(
      tvf.resize(torch.from_numpy(image).permute(2, 0, 1), 20, antialias=True),
      [16, 16]).permute(1, 2, 0).numpy()
  np.testing.assert_allclose(ours, theirs, atol=2e-5)


@needs_torchvision
def test_train_crop_matches_torchvision_resized_crop_and_flip():
  image = np.random.default_rng(0).random((33, 47, 3), dtype=np.float32)
  torch_image = torch.from_numpy(image).permute(2, 0, 1)
  flips = []
  for seed in range(8):
    geometry = transforms.train_geometry(tf.constant([33, 47]), 16,
                                         tf.constant([seed, 7], tf.int64))
    g = _geometry_np(geometry)
    ours = transforms.apply_geometry(tf.constant(image), geometry, 16).numpy()
    theirs = tvf.resized_crop(torch_image, g["y"], g["x"], g["h"], g["w"],
                              [16, 16], antialias=True)
    if g["flip"]:
      theirs = tvf.horizontal_flip(theirs)
    np.testing.assert_allclose(ours, theirs.permute(1, 2, 0).numpy(),
                               atol=2e-5)
    flips.append(g["flip"])
  assert 0 < sum(flips) < 8


def _torchvision_crops(hw, n):
  torch.manual_seed(0)
  fake = torch.zeros(1, *hw)
  return np.array([tv_transforms.RandomResizedCrop.get_params(
      fake, scale=[0.08, 1.0], ratio=[3 / 4, 4 / 3]) for _ in range(n)])


def _our_crops(hw, n):
  crops = []
  for seed in range(n):
    g = _geometry_np(transforms.train_geometry(
        tf.constant(hw), 16, tf.constant([seed, 0], tf.int64)))
    crops.append([g["y"], g["x"], g["h"], g["w"]])
  return np.array(crops)


@needs_torchvision
def test_random_resized_crop_distribution_matches_torchvision():
  # A wide image, so that some candidate windows do not fit.
  ours, theirs = _our_crops((30, 90), 300), _torchvision_crops((30, 90), 300)
  for column, what in enumerate(["top", "left", "height", "width"]):
    p = stats.ks_2samp(ours[:, column], theirs[:, column]).pvalue
    assert p > 1e-3, f"crop {what}: KS p-value {p}"
  # Too wide for any candidate: both use the same centred fallback window.
  np.testing.assert_array_equal(_our_crops((10, 200), 5),
                                _torchvision_crops((10, 200), 5))


def test_train_geometry_is_a_function_of_the_seed():
  a = _geometry_np(transforms.train_geometry(tf.constant([50, 70]), 16,
                                             tf.constant([3, 4], tf.int64)))
  b = _geometry_np(transforms.train_geometry(tf.constant([50, 70]), 16,
                                             tf.constant([3, 4], tf.int64)))
  assert a == b
  others = [_geometry_np(transforms.train_geometry(
      tf.constant([50, 70]), 16, tf.constant([3, s], tf.int64)))
            for s in range(5, 9)]
  assert any(o != a for o in others)


def test_decode_rgb_converts_grayscale_and_rgba():
  rng = np.random.default_rng(1)
  gray = rng.integers(0, 256, (5, 7, 1), dtype=np.uint8)
  rgba = rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)
  decoded = transforms.decode_rgb(tf.io.encode_png(gray)).numpy()
  np.testing.assert_array_equal(decoded, np.repeat(gray, 3, axis=-1))
  decoded = transforms.decode_rgb(tf.io.encode_png(rgba)).numpy()
  np.testing.assert_array_equal(decoded, rgba[..., :3])


def test_resize_size_smaller_than_image_size_is_an_error():
  with pytest.raises(ValueError, match="resize_size"):
    transforms.eval_geometry(tf.constant([40, 40]), 32, 30)


# --------------------------------------------------------------------------
# ImageNet validation boxes.


def _write_box_xml(path, width, height, boxes):
  """boxes: (xmin, ymin, xmax, ymax) in pixels, VOC order."""
  objects = "".join(
      f"<object><name>n01440764</name><bndbox><xmin>{x0}</xmin><ymin>{y0}"
      f"</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
      for x0, y0, x1, y1 in boxes)
  with open(path, "w") as f:
    f.write(f"<annotation><filename>{os.path.basename(path)}</filename>"
            f"<size><width>{width}</width><height>{height}</height>"
            f"<depth>3</depth></size>{objects}</annotation>")


def test_imagenet_box_reader(tmp_path):
  val = tmp_path / "val"
  val.mkdir()
  _write_box_xml(val / "ILSVRC2012_val_00000001.xml", 500, 375,
                 [(111, 108, 441, 193)])
  _write_box_xml(val / "ILSVRC2012_val_00000002.xml", 200, 100,
                 [(0, 0, 100, 50), (150, 80, 120, 20), (-10, 90, 250, 120)])
  boxes = imagenet_boxes.read_box_dir(str(tmp_path))
  assert sorted(boxes) == ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002"]
  np.testing.assert_allclose(boxes["ILSVRC2012_val_00000001"],
                             [[108 / 375, 111 / 500, 193 / 375, 441 / 500]])
  np.testing.assert_allclose(
      boxes["ILSVRC2012_val_00000002"],
      [[0.0, 0.0, 0.5, 0.5],
       [0.2, 0.6, 0.8, 0.75],   # min > max reordered
       [0.9, 0.0, 1.0, 1.0]])   # clipped to [0, 1]
  assert boxes["ILSVRC2012_val_00000002"].dtype == np.float32

  with pytest.raises(FileNotFoundError, match="ILSVRC2012_bbox_val_v3.tgz"):
    imagenet_boxes.read_box_file(str(val / "ILSVRC2012_val_00000003.xml"))
  with pytest.raises(FileNotFoundError, match="ILSVRC2012_bbox_val_v3.tgz"):
    imagenet_boxes.read_box_dir(str(tmp_path / "nowhere"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="no .xml box file"):
    imagenet_boxes.read_box_dir(str(tmp_path / "empty"))
  _write_box_xml(val / "broken.xml", 0, 100, [(0, 0, 1, 1)])
  with pytest.raises(ValueError, match="width"):
    imagenet_boxes.read_box_file(str(val / "broken.xml"))


# --------------------------------------------------------------------------
# The three datasets on tfds.testing.mock_data.


def _write_mock_metadata(name: str, data_dir: str, splits) -> None:
  """Split sizes for `MockPolicy.USE_FILES`: NUM_MOCK examples per split."""
  builder = tfds.builder(name, data_dir=data_dir)
  template = tfds.core.ShardedFileTemplate(
      data_dir=builder.data_dir, dataset_name=builder.name,
      filetype_suffix="tfrecord")
  builder.info.set_splits(tfds.core.SplitDict([
      tfds.core.SplitInfo(name=s, shard_lengths=[NUM_MOCK], num_bytes=0,
                          filename_template=template.replace(split=s))
      for s in splits]))
  os.makedirs(builder.data_dir, exist_ok=True)
  builder.info.write_to_directory(builder.data_dir)


def _mock(name, tmp_path, splits, **kwargs):
  _write_mock_metadata(name, str(tmp_path), splits)
  return tfds.testing.mock_data(
      num_examples=NUM_MOCK, policy=tfds.testing.MockPolicy.USE_FILES,
      data_dir=str(tmp_path), **kwargs)


def _cub_as_dataset(self, split, decoders=None, read_config=None,
                    shuffle_files=False):
  """mock_data's examples with valid boxes: its random BBox values can have
  min > max, which `BBoxFeature` refuses to encode."""
  del split, read_config, shuffle_files
  features = self.info.features

  def examples():
    for ex in mocking.RandomFakeGenerator(features, NUM_MOCK):
      corners = np.sort(ex["bbox"].reshape(2, 2), axis=0)  # mins first
      yield features.encode_example({**ex, "bbox": corners.reshape(4)})

  specs = features.get_serialized_info()
  ds = tf.data.Dataset.from_generator(
      examples, output_signature=tf.nest.map_structure(
          lambda t: tf.TensorSpec(t.shape, t.dtype), specs))
  return ds.map(functools.partial(features.decode_example, decoders=decoders))


def _check_batch(batch, batch_size, image_size, keys):
  assert set(batch) == set(keys)
  assert batch["image"].shape == (batch_size, image_size, image_size, 3)
  assert batch["image"].dtype == np.float32
  assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
  real = batch["valid"] if "valid" in batch else slice(None)
  assert batch["image"][real].size == 0 or batch["image"][real].std() > 0.01
  assert batch["label"].shape == (batch_size,)
  assert batch["label"].dtype == np.int32
  for key in ("box_mask", "segmentation"):
    if key in batch:
      assert batch[key].shape == (batch_size, image_size, image_size)
      assert batch[key].dtype == np.float32
      assert 0.0 <= batch[key].min() and batch[key].max() <= 1.0
  if "box_mask" in batch:
    assert set(np.unique(batch["box_mask"])) <= {0.0, 1.0}
  if "valid" in batch:
    assert batch["valid"].dtype == bool


def test_cub_on_mock_data(tmp_path):
  with _mock("caltech_birds2011", tmp_path, ["train", "test"],
             as_dataset_fn=_cub_as_dataset):
    train = list(pipelines.make_dataset(
        "caltech_birds2011", "train", batch_size=2, train=True, image_size=24))
    test = list(pipelines.make_dataset(
        "caltech_birds2011", "test", batch_size=2, train=False, image_size=24))
  assert len(train) == NUM_MOCK // 2 and len(test) == -(-NUM_MOCK // 2)
  keys = {"image", "label", "box_mask", "segmentation"}
  for batch in train:
    _check_batch(batch, 2, 24, keys)
  for batch in test:
    _check_batch(batch, 2, 24, keys | {"valid"})
  assert sum(b["valid"].sum() for b in test) == NUM_MOCK
  assert max(b["box_mask"].mean() for b in test) > 0
  assert all(0 < b["label"].max() < 200 for b in train)


def test_places365_on_mock_data(tmp_path):
  with _mock("places365_small", tmp_path, ["train", "validation"]):
    train = next(pipelines.make_dataset(
        "places365_small", "train", batch_size=4, train=True, image_size=32))
    val = list(pipelines.make_dataset(
        "places365_small", "validation", batch_size=4, train=False,
        image_size=32))
    with pytest.raises(ValueError, match="has no object boxes"):
      pipelines.make_dataset("places365_small", "validation", batch_size=4,
                             train=False, require_boxes=True)
  _check_batch(train, 4, 32, {"image", "label"})
  for batch in val:  # No boxes in Places365: no box_mask.
    _check_batch(batch, 4, 32, {"image", "label", "valid"})
  assert [b["valid"].sum() for b in val] == [4, 1]


def test_imagenet_on_mock_data_with_validation_boxes(tmp_path):
  boxes_dir = tmp_path / "boxes"
  boxes_dir.mkdir()
  with _mock("imagenet2012", tmp_path, ["train", "validation"]):
    builder = tfds.builder("imagenet2012")
    names = [ex["file_name"].decode() for ex in tfds.as_numpy(
        builder.as_dataset(split="validation",
                           decoders={"image": tfds.decode.SkipDecoding()}))]
    assert len(set(names)) == NUM_MOCK
    # Example 0: one box over the whole image; 1: two halves whose union is
    # the whole image; 2: a box in the top 0.1 % of the image, which covers no
    # pixel centre after the resize; 3 and 4: no box file, skipped.
    _write_box_xml(boxes_dir / f"{names[0]}.xml", 100, 100, [(0, 0, 100, 100)])
    _write_box_xml(boxes_dir / f"{names[1]}.xml", 80, 60,
                   [(0, 0, 40, 60), (40, 0, 80, 60)])
    _write_box_xml(boxes_dir / f"{names[2]}.xml", 1000, 1000, [(0, 0, 1000, 1)])
    val = list(pipelines.make_dataset(
        "imagenet2012", "validation", batch_size=2, train=False,
        image_size=16, boxes_dir=str(boxes_dir)))
    train = next(pipelines.make_dataset(
        "imagenet2012", "train", batch_size=2, train=True, image_size=16))
    with pytest.raises(ValueError, match="evaluation"):
      pipelines.make_dataset("imagenet2012", "train", batch_size=2, train=True,
                             boxes_dir=str(boxes_dir))
    # M_E on ImageNet needs the boxes: without boxes_dir a clear error.
    with pytest.raises(ValueError, match="config.dataset.boxes_dir"):
      pipelines.make_dataset("imagenet2012", "validation", batch_size=2,
                             train=False, require_boxes=True)
    with pytest.raises(ValueError, match="is not a directory"):
      pipelines.make_dataset("imagenet2012", "validation", batch_size=2,
                             train=False, require_boxes=True,
                             boxes_dir=str(tmp_path / "nowhere"))
    assert next(pipelines.make_dataset(
        "imagenet2012", "validation", batch_size=2, train=False, image_size=16,
        boxes_dir=str(boxes_dir), require_boxes=True))["box_mask"].shape == (
            2, 16, 16)
  _check_batch(train, 2, 16, {"image", "label"})
  assert len(val) == 3  # ceil(5 / 2): the skipped examples become padding
  for batch in val:
    _check_batch(batch, 2, 16, {"image", "label", "valid", "box_mask"})
  valid = np.concatenate([b["valid"] for b in val])
  masks = np.concatenate([b["box_mask"] for b in val])
  np.testing.assert_array_equal(valid, [True, True, True, False, False, False])
  np.testing.assert_array_equal(masks[0], 1.0)
  np.testing.assert_array_equal(masks[1], 1.0)
  np.testing.assert_array_equal(masks[2:], 0.0)


# --------------------------------------------------------------------------
# A small dataset prepared on disk: real TFRecords, splits and shards.


@pytest.fixture(scope="module")
def tiny_dir(tiny_data):
  """tiny_birds (`data_util.TINY`): CUB's features on synthetic images, `label` =
  the example's index."""
  return tiny_data("tiny_birds")


def _epoch(data_dir, split="train", **kwargs):
  kwargs = {**dict(batch_size=4, train=True, image_size=32, seed=0,
                   data_dir=data_dir), **kwargs}
  return list(pipelines.make_dataset("tiny_birds", split, **kwargs))


def _labels(batches):
  return np.concatenate([b["label"][b["valid"]] if "valid" in b else b["label"]
                         for b in batches])


def _assert_same_batches(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for key in x:
      np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_same_seed_same_batches_other_seed_or_epoch_others(tiny_dir):
  first = _epoch(tiny_dir, seed=3, epoch=1)
  assert len(first) == 22 // 4
  _check_batch(first[0], 4, 32, {"image", "label", "box_mask", "segmentation"})
  _assert_same_batches(first, _epoch(tiny_dir, seed=3, epoch=1))
  assert len(set(_labels(first))) == 20  # no example twice in an epoch
  for other in (_epoch(tiny_dir, seed=4, epoch=1),
                _epoch(tiny_dir, seed=3, epoch=2)):
    assert not np.array_equal(_labels(other), _labels(first))
    assert not np.array_equal(other[0]["image"], first[0]["image"])


def test_skip_batches_resumes_exactly(tiny_dir):
  full = _epoch(tiny_dir, seed=5, epoch=2)
  _assert_same_batches(_epoch(tiny_dir, seed=5, epoch=2, skip_batches=2),
                       full[2:])
  assert _epoch(tiny_dir, seed=5, epoch=2, skip_batches=len(full)) == []
  with pytest.raises(ValueError, match="skip_batches"):
    _epoch(tiny_dir, skip_batches=len(full) + 1)
  evaluation = _epoch(tiny_dir, "test", train=False)
  _assert_same_batches(_epoch(tiny_dir, "test", train=False, skip_batches=4),
                       evaluation[4:])


def test_evaluation_pads_the_last_batch(tiny_dir):
  batches = _epoch(tiny_dir, "test", train=False)
  assert len(batches) == 6  # ceil(21 / 4)
  # Every example once (TFDS stores them in its own shuffled order).
  np.testing.assert_array_equal(np.sort(_labels(batches)), np.arange(21))
  np.testing.assert_array_equal(batches[-1]["valid"],
                                [True, False, False, False])
  for key in ("image", "box_mask", "segmentation"):
    np.testing.assert_array_equal(batches[-1][key][1:], 0.0)


@pytest.mark.parametrize("augment", [False, True])
def test_segmentation_and_box_mask_follow_the_same_geometry(tiny_dir, augment):
  # The masks of tiny_birds are their boxes, so after any crop, resize and flip
  # the resampled mask and the rasterised box agree but for edge pixels.
  for batch in _epoch(tiny_dir, augment=augment, seed=1):
    for seg, box in zip(batch["segmentation"], batch["box_mask"]):
      disagree = (seg > 0.5) != (box > 0.5)
      assert disagree.mean() < 0.05
    # The image is bright (220) on the object, dark (< 100) elsewhere.
    bright = batch["image"].mean(-1) > 0.6
    assert ((bright == (batch["box_mask"] > 0.5)).mean()) > 0.95


def test_two_processes_get_disjoint_shards_covering_the_split(tiny_dir):
  for split, train in (("test", False), ("train", True)):
    shards = [_epoch(tiny_dir, split, train=train, process_index=p,
                     process_count=2) for p in range(2)]
    steps = pipelines.steps_per_epoch("tiny_birds", split, batch_size=4,
                                      train=train, data_dir=tiny_dir,
                                      process_count=2)
    assert [len(s) for s in shards] == [steps, steps]
    assert all(b["image"].shape[0] == 2 for s in shards for b in s)
    a, b = (set(_labels(s)) for s in shards)
    assert not a & b
    if not train:
      assert a | b == set(range(21))
      assert [pipelines.num_examples("tiny_birds", "test", data_dir=tiny_dir,
                                     process_index=p, process_count=2)
              for p in range(2)] == [11, 10]


def test_steps_per_epoch_for_one_and_two_processes(tiny_dir):
  def steps(split, batch_size, train, process_count):
    return pipelines.steps_per_epoch(
        "tiny_birds", split, batch_size=batch_size, train=train,
        data_dir=tiny_dir, process_count=process_count)
  assert pipelines.num_examples("tiny_birds", "train", data_dir=tiny_dir) == 22
  assert steps("train", 4, True, 1) == 5    # 22 // 4
  assert steps("train", 4, True, 2) == 5    # shards 11, 11: 11 // 2
  assert steps("test", 4, True, 2) == 5     # shards 11, 10: min(5, 5)
  assert steps("train", 6, True, 2) == 3    # 11 // 3
  assert steps("test", 6, True, 2) == 3     # min(11 // 3, 10 // 3)
  assert steps("test", 4, False, 1) == 6    # ceil(21 / 4)
  assert steps("test", 4, False, 2) == 6    # ceil(11 / 2)
  assert steps("test", 8, False, 2) == 3    # ceil(11 / 4)
  with pytest.raises(ValueError, match="multiple of the number of processes"):
    steps("train", 5, True, 2)
  with pytest.raises(ValueError, match="smaller than the per-process batch"):
    steps("test", 24, True, 1)


def test_missing_dataset_errors_say_what_to_do(tmp_path):
  with pytest.raises(pipelines.DatasetNotPreparedError) as info:
    pipelines.make_dataset("caltech_birds2011", "train", batch_size=2,
                           train=True, data_dir=str(tmp_path))
  message = str(info.value)
  assert "caltech_birds2011" in message and str(tmp_path) in message
  assert "tfds build caltech_birds2011" in message
  assert "config.dataset.download=True" in message
  manual = tmp_path / "manual"
  with pytest.raises(pipelines.DatasetNotPreparedError) as info:
    pipelines.num_examples("imagenet2012", "validation", data_dir=str(tmp_path))
  with pytest.raises(pipelines.DatasetNotPreparedError) as info:
    pipelines.make_dataset("imagenet2012", "validation", batch_size=2,
                           train=False, data_dir=str(tmp_path),
                           manual_dir=str(manual), download=True)
  message = str(info.value)
  for part in ("imagenet2012", str(tmp_path), "ILSVRC2012_img_train.tar",
               "ILSVRC2012_img_val.tar", str(manual)):
    assert part in message
  with pytest.raises(ValueError, match="unknown dataset 'no_such_set'"):
    pipelines.num_examples("no_such_set", "train", data_dir=str(tmp_path))


def test_another_dataset_does_not_inherit_download_and_advice_fits(
    tmp_path, monkeypatch):
  """Item 9: the quickstart's composites build offline; with another dataset
  name nothing downloads and the advice names the config field."""
  path = os.path.join(util.REPO, "configs", "quickstart.py")
  config = util.load_config_file(path)
  assert not config.dataset.download
  config.dataset.name = "caltech_birds2011"
  with pytest.raises(pipelines.DatasetNotPreparedError) as info:
    pipelines.make_dataset(config.dataset.name, "train", batch_size=2,
                           train=True, data_dir=str(tmp_path),
                           download=config.dataset.download)
  assert "config.dataset.download=True" in str(info.value)
  assert f"tfds build caltech_birds2011 --data_dir={tmp_path}" in str(info.value)
  assert not os.listdir(tmp_path)  # nothing fetched, nothing written
  # The composites are built offline when missing: without the Tux Paint
  # files the error says how to install them.
  monkeypatch.setenv("DRE_TUXPAINT_ROOT", str(tmp_path / "no_tuxpaint"))
  with pytest.raises(FileNotFoundError, match="apt-get"):
    pipelines.num_examples("tuxpaint_composites/coarse_64", "train",
                           data_dir=str(tmp_path / "composites"))
