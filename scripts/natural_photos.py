r"""DRE trained on the composites, judged on natural photos it never saw.

    bash scripts/setup_env.sh --photos   # Debian's opencv-doc and darknet
    python scripts/natural_photos.py --workdir=runs/lite0_128 \
        --sizes=128,224 --methods=dre,gcam,gcam++,vgrad --out=results/natural_photos

The photos are the ones that ship with PyPI / Debian packages (scikit-image's
`skimage.data`, scikit-learn's sample images, the examples of Debian's
`opencv-doc` and the data of Debian's `darknet`; `setup_env.sh --photos`
installs the two Debian packages, or unpacks them into data/photos/ without
root; a photo whose package is missing is skipped with a note), each with an
object box drawn by hand (`results/natural_photos/boxes.json`, fractions of
the photo's sides). They are test-only: a training folder holding any of them
is refused (`dre_jax.data.folder.TEST_ONLY`). At each size S the photo and its
box go through the same resize (shorter side S / 0.875) and centre crop as
`explain.py`, each method explains the classifier's prediction, and the script
reports, per method and photo: M_E (Eq. 11) against the box, raw M_F (Eq. 10,
32 steps, the evaluation protocol's blur and tie-breaker), M_F normalised per
photo by min-max over the methods of `--methods` (Sec. 4.2.1,
`scoring.normalised`), the maps' skewness (all from
`dre_jax.evaluation.scoring`; NaN for a map that is not finite), the share of
the map's mass inside the box and the box's share of the cropped photo (the
chance level of M_E). With `dre` among the methods, DRE minus each other
method on M_E and on normalised M_F: the mean per-photo difference, its paired
percentile bootstrap 95% interval and DRE's wins / ties / losses
(`dre_jax.evaluation.statistics.compare`); "level" where the interval contains
zero. The same numbers on the first `--composites` test composites at each
size (exact boxes) put the photos beside the domain DRE was trained on.
Writes `<out>/natural_photos.md`, `results.json` and `maps_<S>.png` (photo
with its box, then each method).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dre_jax import cli  # noqa: E402
from dre_jax import images as images_lib  # noqa: E402
from dre_jax.data import folder  # noqa: E402
from dre_jax.evaluation import protocol  # noqa: E402
from dre_jax.evaluation import scoring  # noqa: E402
from dre_jax.evaluation import statistics  # noqa: E402

# The evaluation protocol's scoring at its defaults: 32 steps, its blur and tie-breaker.
PROTOCOL = protocol.Protocol(num_steps=32, steps_per_call=4)

# The method the others are compared with, and the per-photo metrics compared.
REFERENCE = "dre"
COMPARED = (("explainability", "M_E"), ("faithfulness_normalised", "M_F normalised"))


def _debian(directory: str) -> str:
  """A Debian package's directory: unpacked into data/photos/ by
  `setup_env.sh --photos` (`folder.PHOTOS_LOCAL_DIR`), else installed."""
  local = os.path.join(folder.PHOTOS_LOCAL_DIR, directory)
  return local if os.path.isdir(local) else os.path.join(os.sep, directory)


# "<root>:<name>" photo sources: the directory of each root (None: not installed).
ROOTS = {
    "skimage": lambda: folder.package_dir("skimage", "data"),
    "sklearn": lambda: folder.package_dir("sklearn", "datasets", "images"),
    "opencv": lambda: _debian("usr/share/doc/opencv-doc/examples"),
    "darknet": lambda: _debian("usr/share/darknet/data"),
}


def resolve(source: str) -> str | None:
  """"skimage:coffee.png" -> the file's path; None if its package is not installed."""
  root, _, name = source.partition(":")
  if root not in ROOTS:
    raise ValueError(f"photo source {source!r}: use one of {sorted(ROOTS)}:NAME")
  directory = ROOTS[root]()
  return os.path.join(directory, name) if directory else None


def box_mask(shape, boxes) -> np.ndarray:
  """[H, W] float32, 1 inside the union of fractional boxes [x0, y0, x1, y1]."""
  h, w = shape
  mask = np.zeros((h, w), np.float32)
  for x0, y0, x1, y1 in boxes:
    mask[int(round(y0 * h)):int(round(y1 * h)), int(round(x0 * w)):int(round(x1 * w))] = 1
  return mask


def load_photos(boxes_file: str, size: int):
  """(names, objects, images [N, S, S, 3], box masks [N, S, S], skipped)."""
  with open(boxes_file) as f:
    spec = json.load(f)
  names, objects, images, masks, skipped = [], [], [], [], []
  for item in spec["photos"]:
    path = resolve(item["source"])
    if path is None or not os.path.exists(path):
      skipped.append(item["source"])
      continue
    image = images_lib.load(path)
    mask = box_mask(image.shape[:2], item["boxes"])
    images.append(images_lib.resize_and_crop(image, size))
    masks.append(images_lib.resize_and_crop(np.repeat(mask[..., None], 3, -1),
                                            size)[..., 0] > 0.5)
    names.append(item["source"].partition(":")[2])
    objects.append(item["object"])
  if not images:
    raise ValueError(f"none of the photos of {boxes_file} is installed: run "
                     "`bash scripts/setup_env.sh --photos` and pip install "
                     "scikit-image scikit-learn")
  return names, objects, np.stack(images), np.stack(masks).astype(np.float32), skipped


def load_composites(count: int, size: int, data_dir: str | None):
  """The first `count` test composites at `size` px with their exact boxes."""
  from dre_jax.data import pipelines  # pylint: disable=import-outside-toplevel
  batch = next(pipelines.make_dataset(
      "tuxpaint_composites/coarse_224", "test", batch_size=count, train=False,
      image_size=size, data_dir=data_dir))
  return batch["image"].astype(np.float32), batch["box_mask"].astype(np.float32)


def score(model, maps, images, boxes, targets) -> dict[str, np.ndarray]:
  """Per-image M_E, raw M_F, skewness (the evaluation's `scoring`) and the
  map's mass inside the box."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  metrics = scoring.score(model.classifier, jnp.asarray(images), jnp.asarray(maps),
                          jnp.asarray(targets), jnp.asarray(boxes), protocol=PROTOCOL)
  m = np.maximum(maps - maps.min(axis=(1, 2), keepdims=True), 0)
  return {
      **{k: np.asarray(metrics[k]) for k in ("explainability", "faithfulness",
                                             "skewness")},
      "mass_in_box": (m * boxes).sum(axis=(1, 2)) / np.maximum(m.sum(axis=(1, 2)), 1e-12),
      "box_share": boxes.mean(axis=(1, 2)),
  }


def normalised(scores: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  """{method: [N] M_F normalised per image by min-max over the methods of
  `scores` (Sec. 4.2.1, `scoring.normalised`; NaN with one method)}."""
  values = scoring.normalised(scores)["faithfulness_normalised"]
  return {m: values[i] for i, m in enumerate(scores)}


def versus_dre(scores: dict[str, dict[str, np.ndarray]], *,
               resamples: int = statistics.DEFAULT_RESAMPLES, seed: int = 0
               ) -> dict[str, dict[str, dict | None]]:
  """{method: {metric: DRE minus the method over the same images}} for each
  method other than DRE and each metric of `COMPARED`: mean difference,
  paired bootstrap interval, wins / ties / losses (`statistics.compare`;
  None where no image has both values). {} without DRE."""
  if REFERENCE not in scores:
    return {}
  return {m: {k: statistics.compare(scores[REFERENCE][k], scores[m][k],
                                    resamples=resamples, seed=seed)
              for k, _ in COMPARED}
          for m in scores if m != REFERENCE}


def figure(path, names, images, boxes, out, methods, title):
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  n, cols = len(names), 1 + len(methods)
  height = 1.9 * n + 0.3
  fig, axes = plt.subplots(n, cols, figsize=(1.9 * cols, height), squeeze=False)
  for i in range(n):
    axes[i, 0].imshow(images[i])
    axes[i, 0].contour(boxes[i], levels=[0.5], colors="lime", linewidths=1)
    axes[i, 0].set_ylabel(f"{names[i]}\n{out['target_names'][i]}", fontsize=7)
    for j, method in enumerate(methods):
      ax = axes[i, j + 1]
      ax.imshow(out["maps"][method][i], cmap="jet")
      ax.contour(boxes[i], levels=[0.5], colors="white", linewidths=0.8)
      ax.set_title(f"{method}  M_E {out['scores'][method]['explainability'][i]:.0f}",
                   fontsize=7)
  for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
  fig.suptitle(title, fontsize=9)
  fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / height))  # the title's strip
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--sizes", default="128,224")
  parser.add_argument("--methods", default="dre,gcam,gcam++,vgrad")
  parser.add_argument("--boxes", default=os.path.join(
      os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
      "results", "natural_photos", "boxes.json"))
  parser.add_argument("--composites", type=int, default=32,
                      help="test composites scored beside the photos (0: none)")
  parser.add_argument("--data_dir", default=os.environ.get("TFDS_DATA_DIR"))
  parser.add_argument("--resamples", type=int, default=statistics.DEFAULT_RESAMPLES,
                      help="bootstrap resamples of the DRE-minus-method intervals")
  parser.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")
  parser.add_argument("--out", default="results/natural_photos")
  args = parser.parse_args(argv)
  from dre_jax import app  # pylint: disable=import-outside-toplevel

  methods = [m for m in args.methods.split(",") if m]
  os.makedirs(args.out, exist_ok=True)
  report = {"workdir": args.workdir, "methods": methods, "sizes": {},
            "bootstrap": {"resamples": args.resamples, "seed": args.seed,
                          "confidence": statistics.CONFIDENCE,
                          "tie_tolerance": statistics.TIE_TOLERANCE}}
  for size in (int(s) for s in args.sizes.split(",")):
    begin = time.time()
    model = app.load_model(args.workdir, image_size=size)
    names, objects, photos, boxes, skipped = load_photos(args.boxes, size)
    sets = {"photos": (photos, boxes)}
    if args.composites:
      sets["composites"] = load_composites(args.composites, size, args.data_dir)
    entry = {"skipped": skipped, "names": names, "objects": objects}
    for set_name, (images, masks) in sets.items():
      ex = app.explain_images(list(images), model=model, methods=methods)
      scores = {m: score(model, ex.maps[m], ex.images, masks, ex.targets)
                for m in methods}
      for m, values in normalised(scores).items():
        scores[m]["faithfulness_normalised"] = values
      top = ex.probabilities.max(axis=1)
      entry[set_name] = {
          "targets": ex.targets.tolist(),
          "target_names": [model.class_name(int(t)) for t in ex.targets],
          "probability": top.tolist(),
          "scores": {m: {k: v.tolist() for k, v in s.items()} for m, s in scores.items()},
          "versus_dre": versus_dre(scores, resamples=args.resamples, seed=args.seed),
      }
      if set_name == "photos":
        figure(os.path.join(args.out, f"maps_{size}.png"), names, ex.images, masks,
               {"maps": ex.maps, "scores": scores,
                "target_names": entry[set_name]["target_names"]}, methods,
               f"{os.path.basename(args.workdir.rstrip('/'))}: natural photos at {size} px "
               "(box: hand-drawn)")
    entry["seconds"] = round(time.time() - begin, 1)
    report["sizes"][str(size)] = entry
    print(f"[natural_photos] {size} px: {len(names)} photos, "
          f"{args.composites} composites, {entry['seconds']} s", flush=True)
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(report, f, indent=1)
  with open(os.path.join(args.out, "natural_photos.md"), "w") as f:
    f.write(markdown(report, " ".join(sys.argv)))
  print(f"[natural_photos] wrote {args.out}/natural_photos.md, results.json, maps_*.png")


# The table's columns per method: (score, label, decimals).
COLUMNS = (("explainability", "M_E", 1), ("faithfulness", "M_F", 1),
           ("faithfulness_normalised", "M_F norm.", 1), ("skewness", "skew", 2),
           ("mass_in_box", "mass in box", 2))


def claim(c: dict | None) -> str:
  """A `statistics.compare` result as "+d [low, high] W/T/L: verdict"; the
  verdict names a winner only where the interval excludes zero."""
  if not c:
    return "-"
  verdict = ("level" if c["level"] else
             f"DRE {'higher' if c['low'] > 0 else 'lower'}")
  return f"{statistics.text(c)}: {verdict}"


def markdown(report, command) -> str:
  """The report: means per size and image set, DRE minus each method (with
  intervals), and M_E and normalised M_F per photo with its box share."""
  methods = report["methods"]
  b = report["bootstrap"]
  lines = ["# DRE and the baselines on natural photos it was never trained on", "",
           f"    {command}", "",
           "Means over the images (M_E against the box, raw M_F, M_F normalised per "
           "image by min-max over these methods, moment skewness, share of the map's "
           "mass (map minus its minimum) inside the box; the box's share of the "
           "image is the chance level of both M_E and the mass share).", "",
           "| size | images | box share | " + " | ".join(
               f"{m} {label}" for m in methods for _, label, _ in COLUMNS) + " |",
           "|---|---|---|" + "---|" * (len(COLUMNS) * len(methods))]
  for size, entry in report["sizes"].items():
    for set_name in ("photos", "composites"):
      if set_name not in entry:
        continue
      s = entry[set_name]["scores"]
      share = np.mean(s[methods[0]]["box_share"])
      cells = [f"{np.nanmean(np.asarray(s[m][k], float)):.{digits}f}"
               for m in methods for k, _, digits in COLUMNS]
      lines.append(f"| {size} | {len(s[methods[0]]['explainability'])} {set_name} | "
                   f"{share:.2f} | " + " | ".join(cells) + " |")
  versus = [(size, set_name, entry[set_name]["versus_dre"])
            for size, entry in report["sizes"].items()
            for set_name in ("photos", "composites")
            if entry.get(set_name, {}).get("versus_dre")]
  if versus:
    lines += ["", f"DRE minus each method over the same images: the mean per-image "
              f"difference, its paired percentile bootstrap {b['confidence']:.0%} "
              f"interval ({b['resamples']} resamples, seed {b['seed']}) and DRE's "
              f"wins/ties/losses (|difference| <= {b['tie_tolerance']:g}: a tie); "
              "\"level\": the interval contains zero, so the images do not "
              "separate the two.", "",
              "| size | images | method | " + " | ".join(
                  f"DRE minus method: {label}" for _, label in COMPARED) + " |",
              "|---|---|---|" + "---|" * len(COMPARED)]
    for size, set_name, table in versus:
      for m, c in table.items():
        lines.append(f"| {size} | {set_name} | {m} | " + " | ".join(
            claim(c[k]) for k, _ in COMPARED) + " |")
  lines += ["", "Per photo: the box's share of the cropped photo (M_E's chance "
            "level), the classifier's prediction t and its probability, and M_E | "
            "normalised M_F of each method:", ""]
  for size, entry in report["sizes"].items():
    p = entry["photos"]
    lines += [f"**{size} px**", "",
              "| photo | object (box) | box share | t | p(t) | " + " | ".join(
                  f"{m} M_E \\| M_F norm." for m in methods) + " |",
              "|---|---|---|---|---|" + "---|" * len(methods)]
    for i, name in enumerate(entry["names"]):
      s = p["scores"]
      lines.append(
          f"| {name} | {entry['objects'][i]} | {s[methods[0]]['box_share'][i]:.2f} | "
          f"{p['target_names'][i]} | {p['probability'][i]:.2f} | " + " | ".join(
              f"{s[m]['explainability'][i]:.1f} \\| "
              f"{s[m]['faithfulness_normalised'][i]:.0f}" for m in methods) + " |")
    if entry["skipped"]:
      lines.append(f"\nSkipped (not installed: `bash scripts/setup_env.sh --photos`): "
                   f"{', '.join(entry['skipped'])}")
    lines.append("")
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  cli.run(main, absl_flags=False)
