"""Training DRE on a folder of unlabeled photos (`dre_jax.data.folder`, configs/folder.py).

A folder of 12 small generated photos (PNG, JPEG, WebP; RGB, RGBA, LA,
greyscale, palette and 16-bit; sizes from 30 to 80 px; some in a subfolder)
and one corrupt file; the tiny test classifier (tiny_cnn, random weights)
saved as a classifier directory, given to the config as `weights=`.
"""

import glob
import os
import re
import subprocess
import sys

import jax
import numpy as np
from PIL import Image
import pytest

from dre_jax import config as config_lib
from dre_jax.classifier import Classifier
from dre_jax.data import folder
from dre_jax.data import pipelines
from dre_jax.io import classifier_dir
from dre_jax.io import workdir as workdir_lib
import training_util
import util

REPO = util.REPO
CONFIG = os.path.join(REPO, "configs", "folder.py")
# (mode, extension, (width, height)); every third in a subfolder.
PHOTOS = [("RGB", "png", (40, 30)), ("RGBA", "png", (50, 64)),
          ("L", "jpg", (33, 47)), ("RGB", "webp", (64, 64)),
          ("RGB", "jpg", (80, 45)), ("LA", "png", (36, 36)),
          ("P", "png", (48, 40)), ("RGB", "jpeg", (39, 52)),
          ("L", "png", (60, 30)), ("RGBA", "webp", (45, 45)),
          ("RGB", "png", (32, 32)), ("I;16", "png", (40, 40))]
SIZE = 32
# The tiny run: 9 training photos (holdout 0.25 keeps 3) in batches of 4.
TINY = ("holdout=0.25,size=32", {"embeddings.batch_size": 4, "dre.batch_size": 4,
                                 "dre.epochs": 2, "checkpoint_every_steps": 2,
                                 "log_every_steps": 1})


def make_photos(directory: str) -> str:
  """The 12 photos and `broken.jpg` (not an image) under `directory`."""
  rng = np.random.default_rng(0)
  for i, (mode, ext, (w, h)) in enumerate(PHOTOS):
    image = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    if mode == "I;16":
      image = Image.fromarray(np.asarray(image.convert("L"), np.uint16) * 257)
    elif mode != "RGB":
      image = image.convert(mode)
    sub = os.path.join(directory, "sub" if i % 3 == 0 else "")
    os.makedirs(sub, exist_ok=True)
    image.save(os.path.join(sub, f"photo{i}.{ext}"))
  with open(os.path.join(directory, "broken.jpg"), "wb") as f:
    f.write(b"not an image")
  return directory


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """(photos folder, classifier directory of tiny_cnn with 10 classes)."""
  root = tmp_path_factory.mktemp("folder")
  photos = make_photos(str(root / "photos"))
  classifier = Classifier.init("tiny_cnn", jax.random.key(0), num_classes=10,
                               image_size=SIZE)
  directory = str(root / "classifier")
  classifier_dir.save_classifier(directory, "tiny_cnn", 10, classifier.variables)
  return photos, directory


def tiny_config(photos: str, classifier: str):
  arg, overrides = TINY
  config = util.load_config_file(
      CONFIG, f"path={photos},weights={classifier},{arg}")
  for field, value in overrides.items():
    group, _, key = field.rpartition(".")
    (config[group] if group else config)[key] = value
  return config


def test_unreadable_files_are_skipped_and_counted_once(setup, caplog):
  photos, _ = setup
  files, bad = folder.scan(photos)
  assert len(files) == len(PHOTOS) and len(bad) == 1
  assert "broken.jpg" in bad[0] and "not an image" in bad[0]
  for _ in range(2):
    pipelines.num_examples("folder", "images", data_dir=photos)
  lines = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
  assert len(lines) <= 1  # once per process (an earlier test may have said it)
  assert folder.open_folder(photos).info.splits["images"].num_examples == 12


def test_every_mode_decodes_to_rgb_batches(setup):
  photos, _ = setup
  batches = list(pipelines.make_dataset(
      "folder", "images", batch_size=5, train=False, image_size=SIZE,
      data_dir=photos))
  assert len(batches) == 3  # 12 photos, the last batch padded
  valid = np.concatenate([b["valid"] for b in batches])
  images = np.concatenate([b["image"] for b in batches])[valid]
  assert valid.sum() == 12 and images.shape == (12, SIZE, SIZE, 3)
  assert images.min() >= 0 and images.max() <= 1
  assert (np.concatenate([b["label"] for b in batches])[valid] == -1).all()


def test_holdout_split_and_order_by_relative_path(setup, tmp_path):
  photos, _ = setup
  images = folder.open_folder(photos)
  held, train = images.split_files("images[:25%]"), images.split_files("images[25%:]")
  assert len(held) == 3 and len(train) == 9
  assert sorted(held + train) == sorted(images.files)
  # The order depends on the paths inside the folder, not where it lies.
  moved = make_photos(str(tmp_path / "elsewhere"))
  rel = lambda paths, root: [os.path.relpath(p, root) for p in paths]  # noqa: E731
  assert rel(folder.open_folder(moved).files, moved) == rel(images.files, photos)
  # A glob pattern picks its matches.
  pngs = folder.open_folder(os.path.join(photos, "**", "*.png")).files
  assert len(pngs) == sum(ext == "png" for _, ext, _ in PHOTOS)


def test_training_order_is_seeded_and_resumes_at_a_batch(setup):
  photos, _ = setup
  kwargs = dict(batch_size=2, train=True, image_size=SIZE, augment=False,
                data_dir=photos, seed=3, epoch=1)
  full = [b["image"] for b in pipelines.make_dataset("folder", "images", **kwargs)]
  again = [b["image"] for b in pipelines.make_dataset("folder", "images", **kwargs)]
  rest = [b["image"] for b in pipelines.make_dataset("folder", "images",
                                                     skip_batches=4, **kwargs)]
  other = [b["image"] for b in pipelines.make_dataset(
      "folder", "images", **{**kwargs, "epoch": 2})]
  np.testing.assert_array_equal(np.stack(full), np.stack(again))
  np.testing.assert_array_equal(np.stack(full[4:]), np.stack(rest))
  assert not np.array_equal(np.stack(full), np.stack(other))


def test_missing_and_empty_folders_are_one_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    folder.scan(str(tmp_path / "nowhere"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="holds no image files"):
    folder.scan(str(tmp_path / "empty"))
  with pytest.raises(ValueError, match="no file matches"):
    folder.scan(str(tmp_path / "empty" / "*.jpg"))
  (tmp_path / "bad").mkdir()
  (tmp_path / "bad" / "a.png").write_bytes(b"")
  with pytest.raises(ValueError, match="none of its 1 image files can be read"):
    folder.scan(str(tmp_path / "bad"))


def test_config_checks(setup):
  photos, classifier = setup
  config = tiny_config(photos, classifier)
  config_lib.validate(config)
  assert (config.model.name, config.model.checkpoint) == ("tiny_cnn", classifier)
  assert (config.dataset.train_split, config.dataset.eval_split) == (
      "images[25%:]", "images[:25%]")
  config.classifier.epochs = 1
  config.dataset.data_dir = ""
  with pytest.raises(ValueError, match="no labels.*\n.*data_dir, which is empty"
                     "|data_dir, which is empty.*\n.*no labels"):
    config_lib.validate(config)
  for arg, message in (("", "needs the photos' folder"),
                       (f"path={photos},holdout=1", "must be a share"),
                       (f"path={photos},arch=resnet50", "needs its weights"),
                       (f"path={photos},weights={photos}", "without a classifier")):
    with pytest.raises(ValueError, match=message):
      util.load_config_file(CONFIG, arg)


def _test_only_photo() -> str:
  return next(p for d in folder.test_only_dirs()["scikit-learn (sklearn.datasets images)"]
              for p in glob.glob(os.path.join(d, "*.jpg")))


def test_test_only_photos_are_refused(tmp_path):
  try:
    photo = _test_only_photo()
  except StopIteration:
    pytest.skip("scikit-learn's sample images are not installed")
  with pytest.raises(ValueError, match="test-only"):
    folder.scan(os.path.dirname(photo))
  # Also through a link in an ordinary folder.
  make_photos(str(tmp_path))
  os.symlink(photo, tmp_path / "linked.jpg")
  with pytest.raises(ValueError, match=r"linked\.jpg is one of the photos of "
                     "scikit-learn.*test-only"):
    folder.scan(str(tmp_path))


@pytest.mark.slow  # about a minute: two stages compile
def test_tiny_training_on_a_folder_then_resume_is_a_no_op(setup, tmp_path, caplog):
  from dre_jax.training import trainer  # pylint: disable=import-outside-toplevel
  photos, classifier = setup
  config = tiny_config(photos, classifier)
  workdir = str(tmp_path / "run")
  summary = trainer.train_and_evaluate(config, workdir)
  assert workdir_lib.has_estimator(workdir)
  assert np.isfinite(summary["dre"]["loss"])
  estimator = os.path.join(workdir, workdir_lib.ESTIMATOR_DIR)
  before = {p: os.path.getmtime(p) for p in glob.glob(f"{estimator}/**", recursive=True)}
  caplog.clear()
  with caplog.at_level("INFO"):
    again = trainer.train_and_evaluate(config, workdir)
  assert again == summary
  assert any("estimator" in r.getMessage() and "skipped" in r.getMessage()
             for r in caplog.records)
  assert {p: os.path.getmtime(p) for p in before} == before


@pytest.mark.slow
def test_train_evaluate_explain_from_the_command_line(setup, tmp_path):
  """The issue's check: train.py on the folder config, then evaluate.py and
  explain.py on the workdir."""
  photos, classifier = setup
  arg, overrides = TINY
  workdir = str(tmp_path / "run")
  training_util.run_train(
      f"{CONFIG}:path={photos},weights={classifier},{arg}", workdir,
      *(f"--config.{k}={v}" for k, v in overrides.items()))
  assert workdir_lib.has_estimator(workdir)
  env = util.subprocess_env()
  evaluate = subprocess.run(
      [sys.executable, os.path.join(REPO, "evaluate.py"), f"--workdir={workdir}",
       "--methods=dre", "--progress=false"],
      env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert evaluate.returncode == 0, evaluate.stderr[-3000:]
  assert "3 images of folder/images[:25%]" in evaluate.stdout + evaluate.stderr
  out = str(tmp_path / "explained")
  explain = subprocess.run(
      [sys.executable, os.path.join(REPO, "explain.py"), f"--workdir={workdir}",
       "--methods=dre", f"--out={out}", os.path.join(photos, "photo1.png")],
      env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert explain.returncode == 0, explain.stderr[-3000:]
  assert os.listdir(out)


@pytest.mark.slow
def test_command_line_errors_are_one_line(tmp_path):
  (tmp_path / "empty").mkdir()
  for path, message in ((tmp_path / "nowhere", "does not exist"),
                        (tmp_path / "empty", "holds no image files")):
    result = subprocess.run(
        training_util.train_command(f"{CONFIG}:path={path},arch=tiny_cnn,"
                                    f"weights={tmp_path}/w.pth",
                                    str(tmp_path / "run")),
        env=util.subprocess_env(), cwd=REPO, capture_output=True,
        text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [l for l in result.stderr.splitlines() if "error:" in l]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
