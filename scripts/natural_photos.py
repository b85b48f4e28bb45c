r"""DRE trained on the composites, judged on natural photos it never saw (issue 13).

    python scripts/natural_photos.py --workdir=runs/lite0_128 \
        --sizes=128,224 --methods=dre,gcam,gcam++,vgrad --out=results/natural_photos

The photos are the ones that ship with PyPI / Debian packages (scikit-image's
`skimage.data`, scikit-learn's sample images, Debian's `opencv-doc` examples:
`apt-get install opencv-doc`; a missing one is skipped with a note), each with
an object box drawn by hand (`results/natural_photos/boxes.json`, fractions
of the photo's sides). At each size S the photo and its box go through the
same resize (shorter side S / 0.875) and centre crop as `explain.py`, each
method explains the classifier's prediction, and the script reports, per
method and photo: M_E (Eq. 11) against the box, raw M_F (Eq. 10, 32 steps,
the evaluation protocol's blur and tie-breaker), the maps' skewness (all three
from `dre_jax.evaluation.scoring`; NaN for a map that is not finite) and the
share of the map's mass inside the box. The same numbers on the first
`--composites` test composites at each size (exact boxes) put the photos
beside the domain DRE was trained on. Writes `<out>/natural_photos.md`,
`results.json` and `maps_<S>.png` (photo with its box, then each method).
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
from dre_jax.evaluation import protocol  # noqa: E402
from dre_jax.evaluation import scoring  # noqa: E402

# The evaluation protocol's scoring at its defaults: 32 steps, its blur and tie-breaker.
PROTOCOL = protocol.Protocol(num_steps=32, steps_per_call=4)

ROOTS = {
    "skimage": lambda: os.path.dirname(__import__("skimage.data").data.__file__),
    "sklearn": lambda: os.path.join(os.path.dirname(
        __import__("sklearn.datasets").datasets.__file__), "images"),
    "opencv": lambda: "/usr/share/doc/opencv-doc/examples/data",
}


def resolve(source: str) -> str:
  """"skimage:coffee.png" -> the file's path."""
  root, _, name = source.partition(":")
  if root not in ROOTS:
    raise ValueError(f"photo source {source!r}: use one of {sorted(ROOTS)}:NAME")
  return os.path.join(ROOTS[root](), name)


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
    if not os.path.exists(path):
      skipped.append(item["source"])
      continue
    image = images_lib.load(path)
    mask = box_mask(image.shape[:2], item["boxes"])
    images.append(images_lib.resize_and_crop(image, size))
    masks.append(images_lib.resize_and_crop(np.repeat(mask[..., None], 3, -1),
                                            size)[..., 0] > 0.5)
    names.append(item["source"].partition(":")[2])
    objects.append(item["object"])
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


def figure(path, names, images, boxes, out, methods, title):
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  n, cols = len(names), 1 + len(methods)
  fig, axes = plt.subplots(n, cols, figsize=(1.9 * cols, 1.9 * n), squeeze=False)
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
  fig.tight_layout()
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
  parser.add_argument("--out", default="results/natural_photos")
  args = parser.parse_args(argv)
  from dre_jax import app  # pylint: disable=import-outside-toplevel

  methods = [m for m in args.methods.split(",") if m]
  os.makedirs(args.out, exist_ok=True)
  report = {"workdir": args.workdir, "methods": methods, "sizes": {}}
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
      top = ex.probabilities.max(axis=1)
      entry[set_name] = {
          "targets": ex.targets.tolist(),
          "target_names": [model.class_name(int(t)) for t in ex.targets],
          "probability": top.tolist(),
          "scores": {m: {k: v.tolist() for k, v in s.items()} for m, s in scores.items()},
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


# The table's columns per method: (score, decimals).
COLUMNS = (("explainability", 1), ("faithfulness", 1), ("skewness", 2), ("mass_in_box", 2))


def markdown(report, command) -> str:
  methods = report["methods"]
  lines = ["# DRE trained on the composites, on natural photos", "",
           f"    {command}", "",
           "Means over the images (M_E against the box, raw M_F, moment skewness, share "
           "of the map's mass (map minus its minimum) inside the box; the box's share of "
           "the image is the chance level of both M_E and the mass share).", "",
           "| size | images | box share | " + " | ".join(
               f"{m} M_E | {m} M_F | {m} skew | {m} mass in box" for m in methods) + " |",
           "|---|---|---|" + "---|" * (4 * len(methods))]
  for size, entry in report["sizes"].items():
    for set_name in ("photos", "composites"):
      if set_name not in entry:
        continue
      s = entry[set_name]["scores"]
      share = np.mean(s[methods[0]]["box_share"])
      cells = [f"{np.nanmean(s[m][k]):.{digits}f}" for m in methods
               for k, digits in COLUMNS]
      lines.append(f"| {size} | {len(s[methods[0]]['explainability'])} {set_name} | "
                   f"{share:.2f} | " + " | ".join(cells) + " |")
  lines += ["", "Per photo (M_E of each method; the classifier's prediction t and its "
            "probability):", ""]
  for size, entry in report["sizes"].items():
    p = entry["photos"]
    lines += [f"**{size} px**", "",
              "| photo | object (box) | t | p(t) | " + " | ".join(methods) + " |",
              "|---|---|---|---|" + "---|" * len(methods)]
    for i, name in enumerate(entry["names"]):
      lines.append(f"| {name} | {entry['objects'][i]} | {p['target_names'][i]} | "
                   f"{p['probability'][i]:.2f} | " + " | ".join(
                       f"{p['scores'][m]['explainability'][i]:.1f}" for m in methods) + " |")
    if entry["skipped"]:
      lines.append(f"\nSkipped (not installed): {', '.join(entry['skipped'])}")
    lines.append("")
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  cli.run(main, absl_flags=False)
