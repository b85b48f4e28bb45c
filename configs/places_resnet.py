r"""DRE for a ResNet50 trained on Places365 (paper Sec. 4.3, Table 5).

    python train.py --config=configs/places_resnet.py --workdir=$HOME/dre/places_resnet \
        --config.model.torch_weights=$HOME/weights/resnet50-0676ba61.pth \
        --config.dataset.download=True

TFDS `places365_small` (1.8M training images at 256 px). The paper trains its
own ResNet50 on Places365; here it is fine-tuned from torchvision's ImageNet
weights with a new 365-class head for 10 epochs (SGD 0.01, cosine, batch 64;
without --config.model.torch_weights it trains from scratch, which needs more
epochs: --config.classifier.epochs=90). Then stage 1 (1 epoch) and stage 2
(10 epochs, Adam 1e-2 halved every 3 epochs), 224 px.

Hardware: meant for a TPU v3-8 or one host with 8 GPUs. Not run in this
project (no GPU, no internet for Places365).
Time (an estimate, not measured): 18M classifier and 20M DRE images, one to two
days on 8 V100-class GPUs.
Should reach (expectation, not measured): ~54% top-1 on the validation split
(the Places365 authors' ResNet50: 54.7%); the paper's ranking-based M_F for
DRE is 70.45 (Table 5, min-max normalised over the compared methods).

`:runlocal`: 64 training images at 64 px, one epoch per stage.
"""

from dre_jax import config as config_lib


def get_config(arg=None):
  return config_lib.paper_config("places", "resnet50", classifier_epochs=10,
                                 arg=arg)
