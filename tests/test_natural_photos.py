"""scripts/natural_photos.py: hand-drawn boxes follow the photo through
explain.py's crop, the photos are test-only, and the report's DRE-minus-method
intervals."""

import glob
import json
import os
import re
import shutil

import numpy as np
from PIL import Image
import pytest

from dre_jax.data import folder
from dre_jax.data import tuxpaint_composites
import util

REPO = util.REPO
BOXES = os.path.join(REPO, "results", "natural_photos", "boxes.json")


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


def _photos():
  with open(BOXES) as f:
    return json.load(f)["photos"]


def _inside(path, roots):
  real = os.path.realpath(path)
  return any(real == r or real.startswith(r + os.sep) for r in roots)


def test_the_boxes_are_many_valid_and_their_shares_match(script):
  photos = _photos()
  assert len(photos) >= 30
  assert len({p["source"] for p in photos}) == len(photos)
  assert {p["source"].partition(":")[0] for p in photos} == set(script.ROOTS)
  checked = 0
  for p in photos:
    assert p["object"] and p["boxes"], p["source"]
    for x0, y0, x1, y1 in p["boxes"]:
      assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, p["source"]
    path = script.resolve(p["source"])
    if path and os.path.exists(path):
      w, h = Image.open(path).size
      share = script.box_mask((h, w), p["boxes"]).mean()
      assert abs(share - p["share"]) < 0.002, (p["source"], share)
      checked += 1
  assert checked >= 6  # at least scikit-image's and scikit-learn's


def test_every_photo_is_test_only(script):
  """Each photo's source lies in a `TEST_ONLY` directory, and a training folder
  (`check_not_test_only`) refuses each installed photo."""
  roots = [d for dirs in folder.test_only_dirs().values() for d in dirs]
  for name, root in script.ROOTS.items():
    directory = root()
    if directory:
      assert _inside(directory, roots), name
  installed = [path for p in _photos()
               if (path := script.resolve(p["source"])) and os.path.exists(path)]
  assert len(installed) >= 6
  for path in installed:
    with pytest.raises(ValueError, match="test-only"):
      folder.check_not_test_only([path])


def test_the_debian_packages_unpacked_without_root_are_test_only(script, monkeypatch, tmp_path):
  """`setup_env.sh --photos` without root unpacks into `PHOTOS_LOCAL_DIR`:
  the script reads from there and a training folder refuses it."""
  local = tmp_path / "photos"
  photo = local / "usr" / "share" / "darknet" / "data" / "dog.jpg"
  photo.parent.mkdir(parents=True)
  Image.new("RGB", (8, 8)).save(photo)
  monkeypatch.setattr(folder, "PHOTOS_LOCAL_DIR", str(local))
  assert script.resolve("darknet:dog.jpg") == str(photo)
  with pytest.raises(ValueError, match="Debian's darknet.*test-only"):
    folder.check_not_test_only([str(photo.parent)])


def test_no_config_composite_or_training_module_names_a_test_only_source():
  """No config, composite builder or training module names a test-only
  package or directory, and the composites' Tux Paint roots lie outside them."""
  roots = [d for dirs in folder.test_only_dirs().values() for d in dirs]
  names = re.compile("|".join(
      [r"skimage|sklearn|scikit|opencv|darknet|/usr/share/doc|data/photos|"
       r"PHOTOS_LOCAL_DIR"]
      + [re.escape(os.path.relpath(r, REPO)) for r in roots
         if r.startswith(REPO + os.sep)]), re.IGNORECASE)
  sources = (glob.glob(os.path.join(REPO, "configs", "**", "*.py"), recursive=True)
             + glob.glob(os.path.join(REPO, "dre_jax", "data", "tuxpaint*.py"))
             + glob.glob(os.path.join(REPO, "dre_jax", "training", "*.py")))
  assert len(sources) > 10
  hits = [f"{os.path.relpath(p, REPO)}: {m.group()}" for p in sources
          for m in names.finditer(open(p).read())]
  assert not hits, hits
  for root in (tuxpaint_composites.DEFAULT_ROOT, tuxpaint_composites.LOCAL_ROOT):
    assert not _inside(root, roots), root
    folder.check_not_test_only([root])  # raises if it were


def _scores(rng, n):
  return {"explainability": rng.uniform(20, 60, n), "faithfulness": rng.uniform(20, 60, n),
          "skewness": rng.normal(0, 1, n), "mass_in_box": rng.uniform(0, 1, n),
          "box_share": np.linspace(0.1, 0.6, n)}


def test_dre_minus_each_method_and_the_report(script):
  rng = np.random.default_rng(0)
  n = 24
  scores = {"dre": _scores(rng, n)}
  scores["worse"] = {k: (v - 10 if k in ("explainability", "faithfulness") else v)
                     for k, v in scores["dre"].items()}
  scores["worse"]["explainability"][0] = np.nan  # left out of the pair
  scores["same"] = {k: v.copy() for k, v in scores["dre"].items()}
  scores["same"]["explainability"] += rng.normal(0, 1, n)
  normalised = script.normalised(scores)
  # Min-max over the three methods per image: DRE and "same" tie at the top
  # of M_F (100), "worse" is 10 below (0).
  np.testing.assert_allclose(normalised["worse"], 0)
  np.testing.assert_allclose(normalised["dre"], 100)
  for m, v in normalised.items():
    scores[m]["faithfulness_normalised"] = v
  versus = script.versus_dre(scores, resamples=500, seed=0)
  assert set(versus) == {"worse", "same"}
  worse = versus["worse"]["explainability"]
  assert worse["images"] == n - 1 and worse["wins"] == n - 1
  assert worse["low"] > 0 and not worse["level"]
  assert versus["worse"]["faithfulness_normalised"]["difference"] == pytest.approx(100)
  assert versus["same"]["explainability"]["level"]
  assert versus["same"]["faithfulness_normalised"]["ties"] == n
  assert script.versus_dre({m: scores[m] for m in ("worse", "same")}) == {}

  methods = list(scores)
  entry = {"targets": [0] * n, "target_names": ["cat"] * n, "probability": [0.5] * n,
           "scores": {m: {k: np.asarray(v).tolist() for k, v in s.items()}
                      for m, s in scores.items()},
           "versus_dre": versus}
  report = {"methods": methods, "bootstrap": {
                "resamples": 500, "seed": 0, "confidence": 0.95, "tie_tolerance": 1e-6},
            "sizes": {"128": {"names": [f"p{i}.jpg" for i in range(n)],
                              "objects": ["cat"] * n, "skipped": ["darknet:dog.jpg"],
                              "photos": entry}}}
  text = script.markdown(report, "natural_photos.py --workdir=w")
  rows = [l for l in text.splitlines() if l.startswith("| 128 | photos | ")]
  assert len(rows) == 2
  assert "DRE higher" in rows[0] and rows[0].count("level") == 0
  assert rows[1].count("level") == 2 and "DRE higher" not in rows[1]
  assert f"{worse['difference']:+.2f} [{worse['low']:+.2f}, {worse['high']:+.2f}] 23/0/0" in rows[0]
  # Per photo: the box share, M_E and normalised M_F of each method.
  last = next(l for l in text.splitlines() if l.startswith(f"| p{n - 1}.jpg |"))
  assert "| 0.60 |" in last and "| 100 " in last
  assert "Skipped (not installed" in text and "darknet:dog.jpg" in text


@pytest.mark.slow  # a tiny DRE: trains once per session
def test_the_script_end_to_end_on_two_photos(trained_workdir, tmp_path):
  _, workdir = trained_workdir
  boxes = tmp_path / "boxes.json"
  boxes.write_text(json.dumps({"photos": [p for p in _photos()
                                          if p["source"].startswith("skimage:")][:2]}))
  out = tmp_path / "out"
  util.run_cli(util.cli_command(
      "scripts/natural_photos.py", f"--workdir={workdir}", "--sizes=32",
      "--methods=dre,vgrad", f"--boxes={boxes}", "--composites=0",
      "--resamples=100", f"--out={out}"))
  report = json.loads((out / "results.json").read_text())
  photos = report["sizes"]["32"]["photos"]
  assert len(photos["scores"]["dre"]["explainability"]) == 2
  assert set(photos["versus_dre"]) == {"vgrad"}
  assert "DRE minus method: M_E" in (out / "natural_photos.md").read_text()
  assert (out / "maps_32.png").exists()


@pytest.mark.slow  # downloads about 100 MB
@pytest.mark.skipif(not (shutil.which("apt-get") and shutil.which("dpkg-deb")),
                    reason="needs apt-get and dpkg-deb (Debian/Ubuntu)")
def test_setup_photos_without_root_unpacks_every_debian_photo(script, tmp_path,
                                                              monkeypatch):
  """`setup_env.sh --photos` with the root check off (DRE_SETUP_NO_ROOT=1):
  apt-get download + dpkg-deb -x into the checkout's data/photos/, where the
  script finds every opencv-doc and darknet photo of boxes.json; a second
  run does nothing."""
  checkout, setup = util.setup_without_root(tmp_path, "--photos")

  result = setup()
  assert result.returncode == 0, result.stderr
  assert "apt-get download" in result.stdout and "dpkg-deb -x" in result.stdout
  monkeypatch.setattr(folder, "PHOTOS_LOCAL_DIR", str(
      checkout / os.path.relpath(folder.PHOTOS_LOCAL_DIR, REPO)))
  debian = [p["source"] for p in _photos()
            if p["source"].partition(":")[0] in ("opencv", "darknet")]
  assert len(debian) >= 20
  for source in debian:
    path = script.resolve(source)
    assert path.startswith(str(checkout)) and os.path.isfile(path), source
  again = setup()
  assert again.returncode == 0 and not again.stdout, again.stdout


def test_two_trainings_are_compared_on_the_same_photos(tmp_path):
  """scripts/compare_trainings.py: first minus second per photo, with the
  paired interval; results of other photos are refused; evaluate.py's
  per_image.npz is read too."""
  compare = util.load_module(os.path.join(REPO, "scripts",
                                          "compare_trainings.py"))
  rng = np.random.RandomState(0)
  base = rng.uniform(40, 90, 24)

  def result(shift):
    scores = {"dre": {"explainability": list(base + shift),
                      "faithfulness": list(base / 3)}}
    return {"workdir": f"runs/{shift}", "sizes": {"224": {
        "names": [f"p{i}" for i in range(24)],
        "photos": {"targets": list(range(24)), "scores": scores}}}}

  lines = compare.rows(result(5.0), result(0.0), resamples=2000, seed=0)
  me = next(l for l in lines if "| M_E |" in l)
  assert "+5.00 [+5.00, +5.00] 24/0/0: first higher" in me
  mf = next(l for l in lines if "| M_F raw |" in l)
  assert "+0.00" in mf and "0/24/0: level" in mf
  other = result(0.0)
  other["sizes"]["224"]["photos"]["targets"][0] = 99
  with pytest.raises(ValueError, match="not of the same images"):
    compare.rows(result(5.0), other, resamples=10, seed=0)
  for name, shift in (("a", 2.0), ("b", 0.0)):
    np.savez(tmp_path / f"{name}.npz", index=np.arange(24),
             **{"dre/explainability": base + shift, "dre/faithfulness": base})
  lines = compare.rows(compare.read(str(tmp_path / "a.npz")),
                       compare.read(str(tmp_path / "b.npz")), resamples=100, seed=0)
  assert "| eval | 24 composites | M_E | +2.00 [+2.00, +2.00] 24/0/0" in lines[0]
