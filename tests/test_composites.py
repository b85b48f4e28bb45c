"""Tests for the Tux Paint composites TFDS builder.

Most tests build tiny configs from a fake Tux Paint tree written here with
numpy/PIL. Its stamps carry a colour key per class (red channel = class code,
blue = 10, green = noise so that they pass the clip-art rule; the grayscale
"insects" have R == G == B) and its backgrounds are constant colours, so the
pasted image can be predicted from the stored mask alone.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from dre_jax.data import tuxpaint_composites as tc
import util

SIZE = 64
CLASS_RED = {"birds": 250, "fish_and_shellfish": 190, "fruit_and_nuts": 130}
BLUE = 10
BACKGROUNDS = {"a.jpg": (20, 200, 60), "b.jpg": (40, 90, 230)}
GRAY_BACKGROUND = ("c_gray.jpg", 90)
# Where the mask is soft (0 < alpha < 255), Pillow's RGBA resize rounds the
# premultiplied colour and then divides by the rounded alpha: the blend can be
# off by up to 2 levels there. It is exact where alpha is 0 or 255.
TOLERANCE = 2

KEPT = {
    "animals/birds/bird_a": "birds",
    "animals/birds/bird_b": "birds",
    "animals/birds/bird_p": "birds",
    "animals/fish/fish_a": "fish_and_shellfish",
    "animals/fish/fish_b": "fish_and_shellfish",
    "animals/insects/bug_a": "small_animals",
    "animals/insects/bug_b": "small_animals",
    "food/fruit/fruit_a": "fruit_and_nuts",
    "food/fruit/fruit_b": "fruit_and_nuts",
}
EXPECTED_COUNTS = {
    "found": 21, "kept": 9,
    "not_in_class_folders": 2,   # symbols/, a cartoon/ folder
    "mirror_variant": 1, "vector_twin": 1, "excluded_by_name": 0,
    "unreadable": 1, "no_alpha": 2,  # RGB and L
    "duplicate": 1, "clip_art": 1, "mostly_translucent": 1, "too_small": 1,
    "elongated": 1,
    "converted_palette": 1, "converted_grayscale": 2,
}


def _ellipse_alpha(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
  """uint8 [h, w]: a soft-edged ellipse (255 inside, 0 at the border)."""
  cy, cx = (h - 1) / 2 + rng.uniform(-2, 2), (w - 1) / 2 + rng.uniform(-2, 2)
  yy, xx = np.mgrid[:h, :w]
  r = np.sqrt(((yy - cy) / (0.45 * h)) ** 2 + ((xx - cx) / (0.45 * w)) ** 2)
  return (np.clip((1.0 - r) * 6.0, 0.0, 1.0) * 255).round().astype(np.uint8)


def _keyed_rgba(red: int, h: int, w: int, seed: int) -> np.ndarray:
  rng = np.random.default_rng(seed)
  rgba = np.zeros((h, w, 4), np.uint8)
  rgba[..., 0], rgba[..., 2] = red, BLUE
  rgba[..., 1] = rng.integers(0, 256, (h, w))
  rgba[..., 3] = _ellipse_alpha(h, w, rng)
  return rgba


def _save(root, rel: str, image: Image.Image, **kwargs) -> str:
  path = os.path.join(root, rel)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  image.save(path, **kwargs)
  return path


def make_fake_tree(root) -> str:
  """A tiny Tux Paint tree with one stamp per outcome of the stamp rules."""
  root = str(root)
  s = os.path.join(root, "stamps")
  for i, (name, label) in enumerate(sorted(KEPT.items())):
    if name.endswith("bird_p") or label == "small_animals":
      continue
    _save(s, name + ".png",
          Image.fromarray(_keyed_rgba(CLASS_RED[label], 40 + 6 * i, 56 - 3 * i,
                                      seed=i)))
    with open(os.path.join(s, name + ".txt"), "w") as f:
      f.write(f"A {os.path.basename(name)}.\n")
  with open(os.path.join(s, "animals/birds/bird_b.dat"), "w") as f:
    f.write("nomirror\n")
  # Palette stamp with a transparent index: the palette keeps the colour key.
  rng = np.random.default_rng(100)
  index = rng.integers(1, 256, (50, 44)).astype(np.uint8)
  index[_ellipse_alpha(50, 44, rng) < 128] = 0
  pal = Image.frombytes("P", (44, 50), index.tobytes())
  pal.putpalette([v for g in range(256) for v in (250, g, BLUE)])
  _save(s, "animals/birds/bird_p.png", pal, transparency=0)
  # Grayscale-with-alpha stamps (converted to RGBA).
  for j, name in enumerate(("bug_a", "bug_b")):
    rng = np.random.default_rng(200 + j)
    la = np.stack([rng.integers(150, 256, (44, 52)).astype(np.uint8),
                   _ellipse_alpha(44, 52, rng)], -1)
    _save(s, f"animals/insects/{name}.png", Image.fromarray(la))  # "LA"
  photo = _keyed_rgba(250, 48, 48, seed=300)
  shutil.copyfile(os.path.join(s, "animals/birds/bird_a.png"),
                  os.path.join(s, "animals/birds/bird_a_copy.png"))
  _save(s, "animals/birds/bird_c_mirror.png", Image.fromarray(photo))
  _save(s, "animals/birds/cartoon/toon.png", Image.fromarray(photo))
  _save(s, "symbols/sign.png", Image.fromarray(photo))
  _save(s, "animals/fish/vector.png", Image.fromarray(photo))
  with open(os.path.join(s, "animals/fish/vector.svg"), "w") as f:
    f.write("<svg/>")
  with open(os.path.join(s, "animals/fish/broken.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
  flat = photo.copy()
  flat[..., :3] = (200, 40, 40)
  _save(s, "animals/birds/flat.png", Image.fromarray(flat))
  ghost = photo.copy()
  ghost[..., 3] = np.minimum(ghost[..., 3], 60)
  _save(s, "food/fruit/ghost.png", Image.fromarray(ghost))
  _save(s, "food/fruit/tiny.png", Image.fromarray(_keyed_rgba(130, 12, 12, 1)))
  _save(s, "animals/fish/eel.png", Image.fromarray(_keyed_rgba(190, 12, 100, 2)))
  _save(s, "food/fruit/rgb.png", Image.fromarray(photo[..., :3]))
  _save(s, "food/fruit/gray.png", Image.fromarray(photo[..., 1]))
  t = os.path.join(root, "templates")
  for name, colour in BACKGROUNDS.items():
    _save(t, name, Image.new("RGB", (160, 120), colour), quality=95)
  _save(t, GRAY_BACKGROUND[0], Image.new("L", (100, 140), GRAY_BACKGROUND[1]))
  _save(t, "sheep.jpg", Image.new("RGB", (100, 100), (255, 255, 255)))
  with open(os.path.join(t, "broken.jpg"), "wb") as f:
    f.write(b"\xff\xd8\xff" + bytes(100))
  return root


def background_colours(root) -> dict[str, np.ndarray]:
  """The decoded (constant) colour of each usable fake background."""
  out = {}
  for name in (*BACKGROUNDS, GRAY_BACKGROUND[0]):
    rgb = np.asarray(Image.open(os.path.join(root, "templates", name))
                     .convert("RGB")).reshape(-1, 3)
    assert (rgb == rgb[0]).all(), f"{name} does not decode to one colour"
    out[name] = rgb[0].astype(np.int32)
  return out


def config(name: str, **kwargs) -> tc.TuxpaintCompositesConfig:
  kwargs = {"image_size": SIZE, "num_train": 40, "num_test": 20, **kwargs}
  return tc.TuxpaintCompositesConfig(name=name, **kwargs)


def build(cfg, data_dir, root) -> tfds.core.DatasetBuilder:
  builder = tc.TuxpaintComposites(config=cfg, data_dir=str(data_dir),
                                  tuxpaint_root=root)
  builder.download_and_prepare()
  return builder


def read(builder, split: str) -> list[dict]:
  return list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
  return make_fake_tree(tmp_path_factory.mktemp("tuxpaint"))


@pytest.fixture(scope="module")
def coarse(tree, tmp_path_factory):
  return build(config("t_coarse"), tmp_path_factory.mktemp("data"), tree)


def _stamp_of(example) -> str:
  return example["image/filename"].decode().split(":")[1].split(".png@")[0]


def _background_of(example) -> str:
  return example["image/filename"].decode().split("@")[1]


def test_stamp_rules_counts_and_conversions(tree):
  stamps, counts = tc.scan_stamps(tree)
  assert {s.name: s.coarse for s in stamps} == KEPT
  assert {k: counts.get(k, 0) for k in EXPECTED_COUNTS} == EXPECTED_COUNTS
  assert sum(v for k, v in counts.items()
             if k not in ("found",) and not k.startswith("converted")
             ) == counts["found"]
  by_name = {s.name: s for s in stamps}
  bug = by_name["animals/insects/bug_a"].rgba
  assert bug.shape[-1] == 4 and (bug[..., 0] == bug[..., 1]).all()
  assert not by_name["animals/birds/bird_b"].mirrorable
  assert by_name["animals/birds/bird_a"].mirrorable
  # Stamps are cropped to their alpha > 0 pixels.
  for s in stamps:
    a = s.rgba[..., 3]
    assert a[0].any() and a[-1].any() and a[:, 0].any() and a[:, -1].any()


def test_features_match_caltech_birds2011(coarse):
  cub = tfds.builder_cls("caltech_birds2011")
  cub_features = cub(data_dir="/nonexistent").info.features
  ours = coarse.info.features
  assert sorted(ours.keys()) == sorted(cub_features.keys())
  for key in ours.keys():
    assert type(ours[key]) is type(cub_features[key]), key
    assert ours[key].dtype == cub_features[key].dtype, key
  assert ours["image"].shape == (SIZE, SIZE, 3)
  assert ours["segmentation_mask"].shape == (SIZE, SIZE, 1)
  assert ours["label"].names == list(tc.COARSE_CLASSES)


def test_box_is_tight_box_of_mask_and_share_in_bounds(coarse):
  for split in tc.SPLITS:
    for ex in read(coarse, split):
      solid = ex["segmentation_mask"][..., 0] >= 128
      rows, cols = np.nonzero(solid.any(1))[0], np.nonzero(solid.any(0))[0]
      expected = np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]) / SIZE
      np.testing.assert_allclose(ex["bbox"], expected, atol=1e-6)
      share = (expected[2] - expected[0]) * (expected[3] - expected[1])
      assert tc.BOX_SHARE[0] <= share <= tc.BOX_SHARE[1]


def test_image_is_alpha_blend_of_keyed_stamp_and_background(coarse, tree):
  bgs = background_colours(tree)
  names = coarse.info.features["label"].names
  seen_partial = 0
  for split in tc.SPLITS:
    for ex in read(coarse, split):
      image = ex["image"].astype(np.int32)
      m = ex["segmentation_mask"][..., 0].astype(np.int32)
      bg = bgs[_background_of(ex)]
      # Outside the object the image is the background crop, exactly.
      assert (image[m == 0] == bg).all()
      label = names[ex["label"]]
      assert KEPT[_stamp_of(ex)] == label == ex["label_name"].decode()
      inside = image[m == 255]
      assert len(inside)
      if label == "small_animals":  # grayscale stamps: R == G == B inside
        assert (inside[:, 0] == inside[:, 1]).all()
        assert (inside[:, 0] == inside[:, 2]).all()
        continue
      # Red and blue are the key where the mask is 255 and the alpha blend of
      # key and background everywhere.
      assert (inside[:, 0] == CLASS_RED[label]).all()
      assert (inside[:, 2] == BLUE).all()
      for channel, key in ((0, CLASS_RED[label]), (2, BLUE)):
        expected = (m * key + (255 - m) * bg[channel] + 127) // 255
        assert np.abs(image[..., channel] - expected).max() <= TOLERANCE
      seen_partial += int(((m > 0) & (m < 255)).sum())
  assert seen_partial > 0  # the check covered soft mask edges


def test_labels_follow_folders_and_classes_cover_both_splits(coarse):
  names = coarse.info.features["label"].names
  present = {names.index(c) for c in set(KEPT.values())}
  for split in tc.SPLITS:
    labels = {int(ex["label"]) for ex in read(coarse, split)}
    assert labels == present, split
  meta = coarse.info.metadata
  assert meta["stamp_counts"]["kept"] == len(KEPT)
  assert meta["background_counts"] == {"found": 5, "excluded": 1,
                                       "unreadable": 1, "kept": 3}
  for split in tc.SPLITS:
    assert {o: c for c, objs in meta["objects"][split].items()
            for o in objs} == KEPT


def test_placement_keeps_object_mostly_inside():
  rgba = _keyed_rgba(250, 30, 80, seed=5)
  stamp = tc.Stamp(name="x", coarse="birds", rgba=rgba, mirrorable=True)
  for seed in range(60):
    p = tc.sample_placement(stamp, SIZE, np.random.default_rng(seed))
    h, w = p.rgba.shape[:2]
    pad = SIZE + max(h, w)
    big = np.zeros((SIZE + 2 * pad, SIZE + 2 * pad), np.int64)
    big[pad + p.top:pad + p.top + h, pad + p.left:pad + p.left + w] = (
        p.rgba[..., 3])
    inside = big[pad:pad + SIZE, pad:pad + SIZE].sum()
    assert inside >= (1 - tc.MAX_OUTSIDE) * big.sum()
    np.testing.assert_array_equal(tc.paste(p, SIZE)[..., 3],
                                  big[pad:pad + SIZE, pad:pad + SIZE])


def _record_bytes(builder) -> dict[str, bytes]:
  files = sorted(glob.glob(os.path.join(builder.data_dir, "*.tfrecord*")))
  assert files
  return {os.path.basename(f): open(f, "rb").read() for f in files}


def test_deterministic_across_builds_and_seeds_differ(coarse, tree, tmp_path):
  again = build(config("t_coarse"), tmp_path / "again", tree)
  assert _record_bytes(again) == _record_bytes(coarse)
  train, test = read(coarse, "train"), read(coarse, "test")
  other = read(build(config("t_other"), tmp_path / "other", tree), "train")
  key = lambda ex: ex["image/filename"].decode().split(":")[0]
  by_index = {key(ex): ex["image"] for ex in train}
  for ex in other:
    assert not np.array_equal(ex["image"], by_index[key(ex)])
  assert not any(np.array_equal(a["image"], b["image"])
                 for a in train for b in test)


def example_digest(root: str, cfg=None, n: int = 8) -> str:
  """sha256 of the first n examples per split of `cfg` (default: t_coarse)
  made without TFDS (no hashing of Python objects is involved in making
  them)."""
  cfg = cfg or config("t_coarse")
  stamps, _ = tc.scan_stamps(root)
  backgrounds, _ = tc.load_backgrounds(root)
  names, objects = tc.split_objects(stamps, cfg.labels, cfg.holdout_objects)
  digest = hashlib.sha256()
  for split in tc.SPLITS:
    for i in range(n):
      ex = tc.make_example(cfg, split, i, objects[split], names, backgrounds)
      digest.update(ex["image"].tobytes() + ex["segmentation_mask"].tobytes()
                    + ex["image/filename"].encode())
  return digest.hexdigest()


@pytest.mark.slow  # Python subprocesses
def test_examples_do_not_depend_on_python_hash_seed(tree):
  script = ("import importlib.util, os, sys\n"
            "sys.path.insert(0, os.path.dirname(sys.argv[1]))  # tests/util.py\n"
            "spec = importlib.util.spec_from_file_location('t', sys.argv[1])\n"
            "t = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(t)\n"
            "print(t.example_digest(sys.argv[2]))\n")
  seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
  out = subprocess.run([sys.executable, "-c", script, __file__, tree],
                       env={**os.environ, "PYTHONHASHSEED": seed},
                       capture_output=True, text=True, check=True)
  assert out.stdout.strip().splitlines()[-1] == example_digest(tree)


# sha256 of `example_digest` on the fake tree, recorded from the code that
# built the published uniform-layout configs (Pillow 13.0.0, numpy 2.4.6): a
# change to the builder must leave their examples byte-identical. Another
# Pillow may resample differently; then re-record it with the old builder.
UNIFORM_DIGEST = (
    "8906dbc3f424721001f5b5b94b2f3022f68c74a8cb1c674844b9526183103ccb")


def test_uniform_layout_examples_unchanged(tree):
  assert example_digest(tree) == UNIFORM_DIGEST


def natural_stamps(n: int = 6) -> list:
  """Keyed ellipse stamps of aspect ratios 1:3 to 3:1."""
  return [tc.Stamp(name=f"s{i}", coarse="birds",
                   rgba=_keyed_rgba(250, 20 + 8 * (i % 3), 20 + 8 * (i // 2),
                                    seed=i), mirrorable=i % 2 == 0)
          for i in range(n)]


def _solid_box_share(placement, size) -> tuple[float, bool]:
  """Box share of the pasted `alpha >= 128` and whether it touches a border."""
  r0, c0, r1, c1 = tc._box(tc.paste(placement, size)[..., 3])
  return ((r1 - r0 + 1) * (c1 - c0 + 1) / size**2,
          min(r0, c0) == 0 or max(r1, c1) == size - 1)


def test_natural_layout_spans_imagenet_like_shares():
  stamps = natural_stamps()
  shares, touching = [], 0
  for seed in range(200):
    rng = np.random.default_rng(seed)
    (p,) = tc.sample_layout([stamps[seed % len(stamps)]], SIZE, rng)
    share, touches = _solid_box_share(p, SIZE)
    shares.append(share)
    touching += touches
    inside = tc.paste(p, SIZE)[..., 3].sum(dtype=np.int64)
    assert inside >= tc.NATURAL_MIN_VISIBLE * p.rgba[..., 3].sum(dtype=np.int64)
  q05, q50, q95 = np.quantile(shares, [0.05, 0.5, 0.95])
  assert tc.NATURAL_SHARE[0] <= min(shares) and max(shares) <= tc.NATURAL_SHARE[1]
  assert q05 < 0.1 and 0.2 < q50 < 0.45 and q95 > 0.5, (q05, q50, q95)
  assert max(shares) > 0.65  # beyond the uniform layout's BOX_SHARE
  assert 0.2 < np.mean(shares) < 0.5
  assert 20 <= touching <= 180, touching  # cut by the border, not always


def test_natural_layout_objects_overlap_little_and_are_deterministic():
  stamps = natural_stamps(3)
  for seed in range(30):
    layout = tc.sample_layout(stamps, SIZE, np.random.default_rng(seed))
    again = tc.sample_layout(stamps, SIZE, np.random.default_rng(seed))
    assert len(layout) == 3
    solids = [tc.paste(p, SIZE)[..., 3] >= 128 for p in layout]
    for p, q in zip(layout, again):
      assert (p.top, p.left) == (q.top, q.left)
      np.testing.assert_array_equal(p.rgba, q.rgba)
    for i, a in enumerate(solids):
      for b in solids[:i]:
        assert (a & b).sum() <= tc.NATURAL_MAX_OVERLAP * min(a.sum(), b.sum())


def test_natural_config_boxes_masks_and_objects(tree, tmp_path):
  cfg = config("t_natural", layout="natural", num_train=60, num_test=10)
  builder = build(cfg, tmp_path, tree)
  assert isinstance(builder.info.features["bbox"], tfds.features.Sequence)
  bgs = background_colours(tree)
  names = builder.info.features["label"].names
  counts, touching = [], 0
  for ex in read(builder, "train"):
    boxes, m = ex["bbox"], ex["segmentation_mask"][..., 0]
    stamps = ex["image/filename"].decode().split(":")[1].split("@")[0]
    stamps = [s[:-len(".png")] for s in stamps.split("+")]
    assert len(boxes) == len(stamps) and {KEPT[s] for s in stamps} == {
        names[ex["label"]]}
    counts.append(len(boxes))
    # Outside the objects the image is the background crop, exactly.
    assert (ex["image"][m == 0] == bgs[_background_of(ex)]).all()
    covered = np.zeros_like(m, bool)
    for box in boxes:
      r0, c0, r1, c1 = np.round(box * SIZE).astype(int)
      covered[r0:r1, c0:c1] = True
      solid = m[r0:r1, c0:c1] >= 128  # each box is tight on all four sides
      assert solid[0].any() and solid[-1].any()
      assert solid[:, 0].any() and solid[:, -1].any()
      share = (r1 - r0) * (c1 - c0) / SIZE**2
      assert tc.NATURAL_SHARE[0] <= share <= tc.NATURAL_SHARE[1]
      touching += min(r0, c0) == 0 or max(r1, c1) == SIZE
    # Every opaque pixel is in a box (two soft edges overlapping can combine
    # to a mask >= 128 outside both objects' `alpha >= 128`, never to 255).
    assert not (m == 255)[~covered].any()
  assert max(counts) > 1 and counts.count(1) > len(counts) // 2, counts
  assert touching > 0


def test_heldout_objects_only_in_test(tree, tmp_path):
  builder = build(config("t_heldout", holdout_objects=True), tmp_path, tree)
  objects = builder.info.metadata["objects"]
  for label in objects["test"]:
    train, test = set(objects["train"][label]), set(objects["test"][label])
    assert train and test and not train & test
    assert train | test == {o for o, c in KEPT.items() if c == label}
  train_seen = {_stamp_of(ex) for ex in read(builder, "train")}
  test_seen = {_stamp_of(ex) for ex in read(builder, "test")}
  held_out = {o for objs in objects["test"].values() for o in objs}
  assert test_seen <= held_out and not train_seen & held_out


def test_fine_labels_are_objects(tree, tmp_path):
  builder = build(config("t_fine", labels="fine"), tmp_path, tree)
  names = builder.info.features["label"].names
  assert names == sorted(KEPT)
  # The label names survive a reload from the prepared directory.
  reloaded = tc.TuxpaintComposites(config=config("t_fine", labels="fine"),
                                   data_dir=str(tmp_path))
  assert reloaded.info.features["label"].names == names
  for ex in read(builder, "train"):
    assert names[ex["label"]] == ex["label_name"].decode() == _stamp_of(ex)


def test_config_validation():
  with pytest.raises(ValueError, match="holdout_objects needs labels='coarse'"):
    config("bad", labels="fine", holdout_objects=True)
  with pytest.raises(ValueError, match="labels must be"):
    config("bad", labels="species")
  with pytest.raises(ValueError, match="layout must be one of uniform, natural"):
    config("bad", layout="photo")
  names = {c.name for c in tc.TuxpaintComposites.BUILDER_CONFIGS}
  assert {"coarse_224", "coarse_112", "coarse_64", "fine_224", "fine_112",
          "fine_64", "coarse_heldout_224", "coarse_natural_224",
          "coarse_natural_112", "coarse_natural_64"} <= names


def test_missing_tree_names_the_apt_command(tmp_path, monkeypatch):
  monkeypatch.setenv(tc.ROOT_ENV, str(tmp_path / "nowhere"))
  builder = tc.TuxpaintComposites(config=config("t_missing"),
                                  data_dir=str(tmp_path / "data"))
  with pytest.raises(FileNotFoundError, match="apt-get install -y "
                     "tuxpaint-stamps-default tuxpaint-data"):
    builder.download_and_prepare()


def test_empty_or_unusable_trees_give_clear_errors(tmp_path):
  for sub in ("stamps", "templates"):
    os.makedirs(tmp_path / sub)
  with pytest.raises(ValueError, match="No usable photographic stamp"):
    tc.scan_stamps(str(tmp_path))
  with pytest.raises(ValueError, match="No readable background photo"):
    tc.load_backgrounds(str(tmp_path))
  flat = np.zeros((40, 40, 4), np.uint8)
  flat[5:35, 5:35] = (10, 200, 10, 255)
  _save(str(tmp_path / "stamps"), "animals/birds/flat.png",
        Image.fromarray(flat))
  with pytest.raises(ValueError, match="'clip_art': 1"):
    tc.scan_stamps(str(tmp_path))


def test_holdout_needs_two_objects_per_class(tree):
  stamps, _ = tc.scan_stamps(tree)
  one_bird = [s for s in stamps if s.coarse != "birds"] + [stamps[0]]
  with pytest.raises(ValueError, match="'birds' has 1 object"):
    tc.split_objects(one_bird, "coarse", holdout=True)


# The installed tree, else the one scripts/setup_env.sh unpacked without root.
REAL_ROOT = next((r for r in (tc.DEFAULT_ROOT, tc.LOCAL_ROOT)
                  if os.path.isdir(os.path.join(r, "stamps"))), tc.DEFAULT_ROOT)


# Like UNIFORM_DIGEST, for the first 3 examples per split of published configs
# on Debian 12's tuxpaint-stamps-default 2022.06.04-1 and tuxpaint-data
# 0.9.28: the uniform layout's datasets stay byte-identical.
PUBLISHED_DIGESTS = {
    "coarse_64":
        "d01bc8b74d82fb7f3af4baae3dab0f43503e255cc8963b8bde713e5381c51712",
    "coarse_heldout_112":
        "aa1816c2004ff8dee987a23c20af683c09c734cd2eddce5b38e8774ab27c681a",
    "fine_224":
        "b9f266bec84d824f6bc3ef7676d8939d72b980584f78bf1d606eec8943d452f5",
}


@pytest.mark.slow  # the installed Tux Paint tree
@pytest.mark.skipif(not os.path.isdir(os.path.join(REAL_ROOT, "stamps")),
                    reason=f"Tux Paint not installed: {tc.APT_COMMAND}")
def test_published_configs_unchanged_on_real_tree():
  configs = {c.name: c for c in tc.TuxpaintComposites.BUILDER_CONFIGS}
  assert {name: example_digest(REAL_ROOT, configs[name], 3)
          for name in PUBLISHED_DIGESTS} == PUBLISHED_DIGESTS


@pytest.mark.slow  # the installed Tux Paint tree, full-size
@pytest.mark.skipif(not os.path.isdir(os.path.join(REAL_ROOT, "stamps")),
                    reason=f"Tux Paint not installed: {tc.APT_COMMAND}")
def test_real_tux_paint_tree(tmp_path):
  builder = build(config("t_real", num_train=30, num_test=10), tmp_path,
                  REAL_ROOT)
  assert builder.info.splits["train"].num_examples == 30
  assert builder.info.splits["test"].num_examples == 10
  meta = builder.info.metadata
  counts = meta["stamp_counts"]
  assert 250 <= counts["kept"] <= counts["found"], counts
  # Every coarse class has objects on the real tree, enough to hold some out.
  for split in tc.SPLITS:
    assert sorted(meta["objects"][split]) == sorted(tc.COARSE_CLASSES)
    assert all(len(v) >= 2 for v in meta["objects"][split].values())
  assert len(meta["backgrounds"]) == 17
  names = builder.info.features["label"].names
  for ex in read(builder, "train") + read(builder, "test"):
    assert ex["image"].shape == (SIZE, SIZE, 3)
    assert names[ex["label"]] == ex["label_name"].decode()
    assert meta["objects"]["train"][names[ex["label"]]].count(
        _stamp_of(ex)) == 1
    assert ex["segmentation_mask"].max() == 255


SETUP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     "scripts", "setup_env.sh")


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("apt-get") and shutil.which("dpkg-deb")),
                    reason="needs apt-get and dpkg-deb (Debian/Ubuntu)")
def test_setup_without_root_unpacks_what_the_builder_reads(tmp_path,
                                                           monkeypatch):
  """setup_env.sh's data step with the root check off (DRE_SETUP_NO_ROOT=1):
  apt-get download + dpkg-deb -x into the checkout's data/tuxpaint/, the
  builder's default root there; a second run does nothing."""
  checkout, setup = util.setup_without_root(tmp_path, "--data-only")

  result = setup()
  assert result.returncode == 0, result.stderr
  assert "apt-get download" in result.stdout
  assert "dpkg-deb -x" in result.stdout
  # Where the builder looks in a checkout, moved to this copy of one.
  repo = os.path.dirname(os.path.dirname(SETUP))
  local_root = str(checkout / os.path.relpath(tc.LOCAL_ROOT, repo))
  monkeypatch.setattr(tc, "DEFAULT_ROOT", str(tmp_path / "not_installed"))
  monkeypatch.setattr(tc, "LOCAL_ROOT", local_root)
  monkeypatch.delenv(tc.ROOT_ENV, raising=False)
  assert tc.resolve_root() == local_root
  _, counts = tc.scan_stamps(local_root)
  assert 250 <= counts["kept"], counts
  backgrounds, _ = tc.load_backgrounds(local_root)
  assert len(backgrounds) == 17
  again = setup()
  assert again.returncode == 0 and again.stdout == "", again.stdout


def test_lite0_config_natural_argument_selects_the_natural_composites():
  import util  # pylint: disable=import-outside-toplevel  (this file is also
  # loaded outside pytest, without tests/ on sys.path: example_digest)
  module = util.load_module(os.path.join(util.REPO, "configs",
                                         "composites_lite0.py"))
  assert module.get_config().dataset.name == "tuxpaint_composites/coarse_224"
  natural = module.get_config("size=128,natural")
  assert natural.dataset.name == "tuxpaint_composites/coarse_natural_224"
  assert natural.dataset.image_size == 128
  assert "coarse_natural_224" in {
      c.name for c in tc.TuxpaintComposites.BUILDER_CONFIGS}
