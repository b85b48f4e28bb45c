r"""On a lent GPU: DRE and MGnet for the ImageNet EfficientNet-Lite0
on the Tux Paint composites at 224 px, the paper's schedule, then M_F / M_E / skewness.

    python scripts/gpu/reference_run.py --data=.gpu/data --out=$OUT \
        [--objectives=dre,mgnet] [--epochs=10] [--batch=64] [--all_methods=256]

The GPU machine has no TensorFlow: the composites come as arrays exported here
(`scripts/gpu/export.py`: the TFDS pipeline's 224-px images of all 4,000 train
and 1,000 test composites, WebP-compressed, with their box masks) and
`scripts/gpu/offline.py` feeds them to the library's own trainer
(`dre_jax.training.trainer.train_and_evaluate`: the classifier directory,
stage 1 (Eq. 4, 1 epoch, Adam 1e-3), stage 2 (Eq. 9, or Dabkowski & Gal's Eq. 2
with `config.dre.objective = "mgnet"`), 10 epochs at batch 64, Adam 1e-2 halved
every 3 epochs, seed 0, checkpoints, the estimator workdir). Nothing of the method
is re-implemented here. The classifier is EfficientNet-Lite0 with its ImageNet
weights, used as it is (t = its prediction), as `configs/quickstart.py`.

Then each trained generator explains the 1,000 test composites through the
explainer registry (`explainers.get(name, estimator=..., generator_variables=...)`
on what `load_estimator(workdir)` restores), scored by the evaluation's metrics
(`dre_jax.evaluation.scoring`): M_F (Eq. 10, 32 steps), M_E (Eq. 11, against the
composites' exact object boxes), the masks' skewness; with `--all_methods=N`, every registered method
is also run on the first N test images (the same images for all) and M_F is
normalised per image across methods (Sec. 4.2.1), as Table 3. Writes under
`--out`: reference.json (config, losses, images/s, wall times, metrics),
{dre,mgnet}_generator.npz (the trained variables, "/"-joined paths) and
masks.png.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import sys
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import offline  # noqa: E402

NAME = "tuxpaint_composites/coarse_224"
RESULTS: dict = {}
T_START = time.perf_counter()


def log(*a) -> None:
  print(f"[{time.strftime('%H:%M:%S')} +{time.perf_counter() - T_START:.0f}s]", *a,
        flush=True)


def write(out: str) -> None:
  path = os.path.join(out, "reference.json")
  with open(path + ".tmp", "w") as f:
    json.dump(RESULTS, f, indent=1, default=str)
  os.replace(path + ".tmp", path)


def save_variables(path: str, variables) -> int:
  import flax
  flat = {"/".join(k): np.asarray(v) for k, v in
          flax.traverse_util.flatten_dict(jax.device_get(variables)).items()}
  np.savez_compressed(path, **flat)
  return os.path.getsize(path)


def make_config(objective: str, classifier_path: str, args):
  from dre_jax import config as config_lib
  config = config_lib.paper_config("composites", "efficientnet_lite0")
  config.model.checkpoint = classifier_path
  config.dataset.train_split = "train"
  config.dataset.image_size = 224
  config.seed = args.seed
  config.embeddings.epochs = args.stage1_epochs
  config.embeddings.batch_size = args.batch
  config.dre.epochs = args.epochs
  config.dre.batch_size = args.batch
  config.log_every_steps = args.log_every
  config.checkpoint_every_steps = 10_000
  config.dre.objective = objective
  return config


def train(objective: str, classifier_path: str, args) -> str:
  from dre_jax.training import trainer
  workdir = os.path.join(args.workdir, objective)
  config = make_config(objective, classifier_path, args)
  first = len(offline.SCALARS)
  t0 = time.perf_counter()
  summary = trainer.train_and_evaluate(config, workdir)
  wall = time.perf_counter() - t0
  scalars = offline.SCALARS[first:]
  stages = {}
  for s in scalars:
    for key in s:
      if "/" in key:
        stage = key.split("/")[0]
        st = stages.setdefault(stage, {"first_time": s["time"], "steps": []})
        st["last_time"] = s["time"]
        if not st["steps"] or st["steps"][-1]["step"] != s["step"]:
          st["steps"].append({"step": s["step"]})
        st["steps"][-1][key.split("/", 1)[1]] = s[key]
  for st in stages.values():
    ips = [p["images_per_second"] for p in st["steps"] if "images_per_second" in p]
    st["median_images_per_second"] = float(np.median(ips)) if ips else None
  RESULTS.setdefault("training", {})[objective] = {
      "config": json.loads(config.to_json()), "wall_seconds": wall,
      "summary": summary, "stages": stages}
  log(f"{objective}: trained in {wall:.0f} s; summary {json.dumps(summary, default=str)[:600]}")
  return workdir


def trained_explainer(name: str, workdir: str):
  """(fn, classifier) of a trained method, its variables as device arrays.

  `explainers.load(name, workdir)` closes over the variables that
  `load_estimator` restores as numpy arrays; indexing the class-embedding table
  with a traced target then fails inside jit (TracerArrayConversionError), so
  the variables are bound as jax arrays here.
  """
  from dre_jax import explainers
  from dre_jax.io import load_estimator
  dre, classifier, variables, _ = load_estimator(workdir)
  fn = explainers.get(name, estimator=dre,
                      generator_variables=jax.tree.map(jnp.asarray, variables))
  return fn, jax.tree.map(jnp.asarray, classifier)


def explain_and_score(name: str, fn, classifier, test: dict, n: int, batch: int,
                      key) -> dict:
  """Explainer `fn` on the first n test images, scored by the evaluation's
  metrics (`dre_jax.evaluation.scoring`, 32 steps): (their summary, the
  per-image arrays and targets, the first masks)."""
  from dre_jax.evaluation import protocol
  from dre_jax.evaluation import scoring
  settings = protocol.Protocol(num_steps=32, steps_per_call=4)

  @jax.jit
  def step(classifier, images, boxes, key):
    target = jnp.argmax(classifier.logits(images), -1)
    masks = fn(classifier, images, target, key)
    return masks, target, scoring.compute(classifier, images, masks, target, boxes,
                                          protocol=settings)

  outs, targets, first_masks, seconds = [], [], None, []
  for start in range(0, n, batch):
    images = jnp.asarray(test["image"][start:start + batch], jnp.float32) / 255
    boxes = jnp.asarray(test["box_mask"][start:start + batch])
    t0 = time.perf_counter()
    masks, target, out = jax.device_get(step(classifier, images, boxes,
                                             jax.random.fold_in(key, start)))
    seconds.append(time.perf_counter() - t0)
    outs.append(out)
    targets.append(np.asarray(target))
    if first_masks is None:
      first_masks = masks[:8]
  per = scoring.mask_nonfinite({k: np.concatenate([o[k] for o in outs])
                                for k in outs[0]})
  per["target"] = np.concatenate(targets)
  result = {**scoring.summarise_method(per),
            "seconds_first_batch": seconds[0],
            "seconds_per_image_after_first": (float(sum(seconds[1:]) / max(1, n - batch))
                                              if len(seconds) > 1 else None)}
  return result, per, first_masks


def figure(path: str, images, rows: dict) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  names = list(rows)
  k = min(6, len(images), *(len(v) for v in rows.values()))
  fig, axes = plt.subplots(k, 1 + len(names), figsize=(2 * (1 + len(names)), 2 * k),
                           squeeze=False)
  for i in range(k):
    axes[i, 0].imshow(images[i])
    for j, name in enumerate(names):
      m = np.asarray(rows[name][i], np.float32)
      m = (m - m.min()) / max(float(m.max() - m.min()), 1e-12)
      axes[i, j + 1].imshow(m, cmap="jet", vmin=0, vmax=1)
      if i == 0:
        axes[i, j + 1].set_title(name, fontsize=9)
    for ax in axes[i]:
      ax.axis("off")
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=70)
  plt.close(fig)
  with open(path, "wb") as f:
    f.write(buffer.getvalue())


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data", default=".gpu/data")
  parser.add_argument("--out", required=True)
  parser.add_argument("--workdir", default="/tmp/dre_reference")
  parser.add_argument("--objectives", default="dre,mgnet")
  parser.add_argument("--epochs", type=int, default=10)
  parser.add_argument("--stage1_epochs", type=int, default=1)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--log_every", type=int, default=10)
  parser.add_argument("--train_images", type=int, default=0, help="0: all")
  parser.add_argument("--eval_images", type=int, default=1000)
  parser.add_argument("--eval_batch", type=int, default=100)
  parser.add_argument("--all_methods", type=int, default=0,
                      help="run every registered method on this many test images")
  parser.add_argument("--quick", action="store_true",
                      help="few iterations for the iterative methods (rehearsal)")
  parser.add_argument("--deadline", type=float, default=560.0,
                      help="seconds after start past which optional work is skipped")
  args = parser.parse_args(argv)
  from absl import logging as absl_logging
  import logging as py_logging
  absl_logging.set_verbosity(absl_logging.INFO)  # the trainer's progress lines ...
  py_logging.getLogger("absl").addFilter(  # ... without orbax's dozens per save
      lambda record: "orbax" not in record.pathname)
  os.makedirs(args.out, exist_ok=True)
  RESULTS["command"] = "python " + " ".join(sys.argv)
  RESULTS["devices"] = [d.device_kind for d in jax.devices()]
  RESULTS["jax"] = jax.__version__

  data = offline.load_composites(os.path.join(args.data, "composites_224.npz"))
  if args.train_images:
    data["train"] = {k: v[:args.train_images] for k, v in data["train"].items()}
  RESULTS["data"] = {"train": len(data["train"]["label"]),
                     "test": len(data["test"]["label"]), "psnr_db": data["psnr_db"]}
  log(f"data: {RESULTS['data']}")
  offline.install_shims({(NAME, "train"): data["train"], (NAME, "test"): data["test"]})

  from dre_jax.io import classifier_dir
  classifier_path = os.path.join(args.workdir, "lite0_imagenet")
  if not classifier_dir.is_complete(classifier_path):
    classifier_dir.save_classifier(
        classifier_path, "efficientnet_lite0", 1000,
        offline.load_variables(os.path.join(args.data, "lite0_imagenet.npz")))

  from dre_jax import explainers
  workdirs = {}
  for objective in args.objectives.split(","):
    try:
      workdirs[objective] = train(objective, classifier_path, args)
    except Exception:  # pylint: disable=broad-except
      RESULTS.setdefault("errors", {})[f"train {objective}"] = traceback.format_exc()[-3000:]
      log(f"training {objective} failed:\n{traceback.format_exc()}")
    write(args.out)

  test = data["test"]
  masks_for_figure = {}
  key = jax.random.key(args.seed)
  for objective, workdir in workdirs.items():
    try:
      fn, classifier = trained_explainer(objective, workdir)
      result, _, first = explain_and_score(objective, fn, classifier, test,
                                           args.eval_images, args.eval_batch, key)
      RESULTS.setdefault("evaluation", {})[objective] = result
      masks_for_figure[objective] = first
      from dre_jax.io import load_estimator
      _, _, variables, meta = load_estimator(workdir)
      size = save_variables(os.path.join(args.out, f"{objective}_generator.npz"),
                            variables)
      RESULTS["evaluation"][objective].update({"generator_npz_bytes": size,
                                               "estimator_meta": meta})
      log(f"{objective}: M_F {result['faithfulness']:.2f}, M_E "
          f"{result['explainability']:.2f}, skew {result['skewness']:.3f} "
          f"on {result['images']} test images")
    except Exception:  # pylint: disable=broad-except
      RESULTS.setdefault("errors", {})[f"evaluate {objective}"] = traceback.format_exc()[-3000:]
      log(f"evaluating {objective} failed:\n{traceback.format_exc()}")
    write(args.out)

  if args.all_methods:
    n = args.all_methods
    table, per_image = {}, {}
    bound = {}
    for objective, workdir in workdirs.items():
      bound[objective] = workdir
    classifier = None
    if "dre" in workdirs:
      _, classifier = trained_explainer("dre", workdirs["dre"])
    else:
      from dre_jax.classifier import Classifier
      classifier = Classifier.create("efficientnet_lite0", offline.load_variables(
          os.path.join(args.data, "lite0_imagenet.npz")))
    order = sorted(explainers.names(), key=lambda m: explainers.passes(m)
                   if not explainers.method(m).bound else 0)
    for name in order:
      m = explainers.method(name)
      if time.perf_counter() - T_START > args.deadline:
        table[name] = {"skipped": "deadline"}
        continue
      try:
        if m.bound:
          if name not in workdirs:
            table[name] = {"skipped": "not trained in this run"}
            continue
          fn, _ = trained_explainer(name, workdirs[name])
        else:
          settings = {}
          if args.quick:
            for k, v in (("iterations", 3), ("samples", 4), ("steps", 4)):
              if k in m.defaults:
                settings[k] = v
          fn = functools.partial(explainers.get(name), **settings)
        t0 = time.perf_counter()
        result, per, first = explain_and_score(name, fn, classifier, test, n,
                                               min(n, args.eval_batch), key)
        result["wall_seconds"] = time.perf_counter() - t0
        result.pop("mean_curve")
        table[name], per_image[name] = result, per
        masks_for_figure.setdefault(name, first)
        log(f"all-methods {name}: M_F {result['faithfulness']:.2f} M_E "
            f"{result['explainability']:.2f} skew {result['skewness']:.2f} "
            f"({result['wall_seconds']:.0f} s)")
      except Exception:  # pylint: disable=broad-except
        table[name] = {"error": traceback.format_exc()[-1500:]}
        log(f"all-methods {name} failed:\n{traceback.format_exc()}")
      RESULTS["all_methods"] = {"images": n, "methods": table}
      write(args.out)
    done = [k for k in per_image]
    if len(done) > 1:
      from dre_jax.evaluation import scoring
      norm = scoring.normalised(per_image)["faithfulness_normalised"]
      for k, row in zip(done, norm):
        table[k]["faithfulness_normalised"] = scoring.mean(row)
      RESULTS["all_methods"]["normalised_over"] = done
    write(args.out)

  if masks_for_figure:
    try:
      figure(os.path.join(args.out, "masks.png"), test["image"][:8],
             masks_for_figure)
    except Exception:  # pylint: disable=broad-except
      RESULTS.setdefault("errors", {})["figure"] = traceback.format_exc()[-1500:]
  RESULTS["wall_seconds"] = time.perf_counter() - T_START
  write(args.out)
  summary = {k: {m: round(v[m], 3) for m in ("faithfulness", "explainability",
                                             "skewness") if m in v}
             for k, v in RESULTS.get("evaluation", {}).items()}
  print(json.dumps({"training": {k: {"wall_s": round(v["wall_seconds"], 1)}
                                 for k, v in RESULTS.get("training", {}).items()},
                    "evaluation": summary,
                    "all_methods": {k: {m: round(v[m], 2) for m in
                                        ("faithfulness", "faithfulness_normalised",
                                         "explainability", "skewness") if m in v}
                                    for k, v in RESULTS.get("all_methods", {})
                                    .get("methods", {}).items()},
                    "errors": list(RESULTS.get("errors", {}))}, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
