r"""The paper's classifiers trained from scratch on the offline composites, then DRE.

    python train.py --config=configs/composites_scratch.py:resnet50 \
        --workdir=$HOME/dre/composites_resnet50
    (or :vgg19, :googlenet, :resnet18; add ,runlocal for a few 64-image batches;
    on a CPU add --config.microbatches=4, about 1.8x faster classifier training)

Exercises the paper's three architectures end to end without any download:
the classifier is trained from random weights on the 4,000 training images
of `tuxpaint_composites/coarse_112` (14 classes, built on the first run from
Debian's Tux Paint packages) at 96 px (resize to 110, centre/random crop 96;
not 64 px: at 64 px the stride-32 maps are 2x2, where XLA's CPU convolutions
are ~50x slower than on 3x3 maps) for 30 epochs (Adam 1e-3, weight decay 1e-4, cosine, batch 64,
random-resized crops and flips), evaluated on the 1,000 test images, frozen,
and explained by DRE with the paper's stage-2 settings (10 epochs, batch 64,
Adam 1e-2 halved every 3 epochs) at 96 px. `resnet18` is the ResNet family at
the depth a 2-core CPU trains in a session (not one of the paper's three).

Hardware and Time: on a GPU, minutes. On this project's 2-core x86_64 CPU
(measured 2026-12-01): classifier training at batch 64 runs at 3.2 images/s
for ResNet50 (7.0 per image in steps of 16, a probe: 30 epochs would take
4.8 h), 12.0 for ResNet18 (train.py's log; 22.6 with microbatches=4, so 30
epochs in 90 min; 39-55 in the log of the reference run of 2026-12-06,
mostly alone on the machine) and 11.5 for GoogLeNet (whole batches; 19-37 with
microbatches=4, train.py's log of results/reference_googlenet.md); so
ResNet50 and VGG19 do not fit a CPU session. The ResNet18 reference run (results/reference_scratch.md):
--config.microbatches=4 --config.classifier.epochs=10 (20 min)
--config.dre.epochs=10 (the paper's stage 2: 37 min at 18.9 images/s next
to MGnet's training and an evaluation). Should reach (measured, that run):
test accuracy 0.548 on the 1,000 test composites (chance 0.071); stage-2
masks of mean ~0.28 that keep t for about half the perturbed images; DRE
M_E 67.9 and raw M_F 46.1 on 256 seeded test composites. GoogLeNet
(results/reference_googlenet.md: --config.microbatches=4
--config.classifier.epochs=10, DRE's full 10 epochs; stage 2 73 min at
7.0-10.7 images/s next to MGnet's training): test accuracy 0.596, stage-2
mask mean 0.26, DRE M_E 75.3 and raw M_F 55.2 on 256 seeded test composites.
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
