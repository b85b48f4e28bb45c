r"""The paper's classifiers trained from scratch on the offline composites, then DRE.

    python train.py --config=configs/composites_scratch.py:resnet50 \
        --workdir=$HOME/dre/composites_resnet50
    (or :vgg19, :googlenet; add ,runlocal for a few 64-image batches)

Exercises the paper's three architectures end to end without any download:
the classifier is trained from random weights on the 4,000 training images
of `tuxpaint_composites/coarse_112` (14 classes, built on the first run from
Debian's Tux Paint packages) at 96 px (resize to 110, centre/random crop 96;
not 64 px: at 64 px the stride-32 maps are 2x2, where XLA's CPU convolutions
are ~50x slower than on 3x3 maps) for 30 epochs (AdamW 1e-3, cosine, batch 64,
random-resized crops and flips), evaluated on the 1,000 test images, frozen,
and explained by DRE with the paper's stage-2 settings (10 epochs, batch 64,
Adam 1e-2 halved every 3 epochs) at 96 px.

Hardware: this project's 2-core CPU machine or any GPU. Time: not measured as
a full run; from the step speeds in `results/bench_train.md` (ResNet50 stage 2
at 128 px: 8 images/s here) the ResNet50 run takes a few hours on 2 CPU cores
(an estimate) and minutes on a GPU.
Should reach (expectation, not measured): a classifier well above the 1/14
chance level on the test split; DRE masks concentrated on the pasted object,
which `evaluate.py` measures against the exact object boxes (M_E).
"""

from dre_jax import config as config_lib

ARCHS = ("resnet50", "vgg19", "googlenet", "resnet18")


def get_config(arg=None):
  args = config_lib.parse_args(arg, allowed=ARCHS)
  archs = [a for a in ARCHS if a in args]
  if len(archs) != 1:
    raise ValueError("choose one classifier: --config=configs/"
                     f"composites_scratch.py:{'|'.join(ARCHS)}[,runlocal]")
  config = config_lib.paper_config("composites", archs[0],
                                   classifier_epochs=30, arg=arg, allowed=ARCHS)
  if "runlocal" not in args:
    config.dataset.name = "tuxpaint_composites/coarse_112"
    config.dataset.image_size = 96
  c = config.classifier
  c.optimizer, c.learning_rate, c.weight_decay = "adam", 1e-3, 1e-4
  return config
