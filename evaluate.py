r"""Evaluates a trained DRE: `python evaluate.py --config=configs/x.py --workdir=...`.

Loads what `train.py` wrote into the workdir, explains the config's evaluation
split, and writes into `<workdir>/eval/`:

* `metrics.json`: faithfulness M_F (Eq. 10, Delta = 1/num_steps), explainability
  M_E (Eq. 11, where the dataset has boxes), the mean insertion curve, the mean
  Pearson skewness of the masks, the number of images;
* `masks.png`: images, their DRE masks and the masked images.

Both files are written atomically; a second run overwrites them.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
from ml_collections import config_flags

from dre_jax import cli

from dre_jax import evaluation
from dre_jax.data import pipelines
from dre_jax.models import imagenet
from dre_jax import config as config_lib
from dre_jax.io import workdir as workdir_lib

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "The training config (configs/*.py) of the workdir.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "What train.py trained.")
_SPLIT = flags.DEFINE_string("split", None, "Split to explain; default "
                             "config.dataset.eval_split.")
_BATCH = flags.DEFINE_integer("batch_size", 16, "Images per evaluation batch.")
_MAX_BATCHES = flags.DEFINE_integer("max_batches", 0, "0: the whole split.")
_STEPS = flags.DEFINE_integer("num_steps", 32, "m = 1 / Delta of Eq. 10.")
flags.mark_flags_as_required(["config", "workdir"])


def _titles(meta, target, labels):
  """Figure titles: the explained class t (its ImageNet name) and the label."""
  names = imagenet.imagenet_class_names() if meta["num_classes"] == 1000 else None
  name = lambda t: names[t].split(",")[0] if names else str(t)
  return [f"t = {name(t)} (label {l})" for t, l in zip(target, labels)]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  config_lib.validate(config)
  dre, classifier, gen_vars, meta = workdir_lib.load_estimator(_WORKDIR.value)
  split = _SPLIT.value or config.dataset.eval_split
  batches = pipelines.make_dataset(
      config.dataset.name, split, batch_size=_BATCH.value, train=False,
      image_size=config.dataset.image_size,
      data_dir=config.dataset.data_dir or None,
      manual_dir=config.dataset.manual_dir or None)
  start = time.time()

  def progress(i):
    print(f"\r[evaluate] batch {i} ({time.time() - start:.0f} s)", end="",
          file=sys.stderr, flush=True)

  result = evaluation.evaluate(dre, classifier, gen_vars, batches,
                               num_steps=_STEPS.value,
                               max_batches=_MAX_BATCHES.value or None,
                               progress=progress)
  print(file=sys.stderr)
  first = result.pop("first_batch")
  out_dir = os.path.join(_WORKDIR.value, "eval")
  result.update(split=split, dataset=config.dataset.name, arch=meta["arch"])
  workdir_lib.write_json(out_dir, "metrics.json", result)
  evaluation.save_figure(os.path.join(out_dir, "masks.png"), first["images"],
                         first["masks"], _titles(meta, first["target"], first["labels"]),
                         box_masks=first["box_masks"])
  summary = {k: round(v, 2) for k, v in result.items() if isinstance(v, float)}
  print(f"[evaluate] {result['num_images']} images of {config.dataset.name}/{split}: "
        f"{json.dumps(summary)}")
  print(f"[evaluate] wrote {out_dir}/metrics.json and {out_dir}/masks.png")


if __name__ == "__main__":
  cli.run(main)
