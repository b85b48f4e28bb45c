r"""DRE for VGG19 on CUB-200-2011 (paper Sec. 4.2, Table 3 "Birds-200-2011").

    python train.py --config=configs/cub_vgg.py --workdir=$HOME/dre/cub_vgg \
        --config.model.torch_weights=$HOME/weights/vgg19-dcbb9e9d.pth

The weights are torchvision's ImageNet VGG19
(https://download.pytorch.org/models/vgg19-dcbb9e9d.pth); the dataset is
TFDS `caltech_birds2011` (prepare it once with internet access:
`--config.dataset.download=True`). Stages: the classifier fine-tuned on the
5,994 training images for 30 epochs with a new 200-class head (SGD 0.01,
cosine, batch 64), then DRE stage 1 (1 epoch) and stage 2 (10 epochs, batch
64, Adam 1e-2 halved every 3 epochs), all at 224 px.

Hardware: meant for one host with 8 GPUs or a TPU v3-8 (any device count that
divides 64). Not run in this project: its machines have no GPU and no internet
for CUB. Time (an estimate, not measured): 180k classifier images (30 x
5,994) and 66k DRE images (1 + 10 epochs), about an hour on 8 V100-class GPUs.
Should reach (expectation, not measured): a classifier of ~80% top-1 on the
test split (typical for ImageNet-initialised VGG19 fine-tuning); the paper's
DRE masks rank first with a ranking-based M_F of 85.25 (Table 3, min-max
normalised per image over the compared methods: evaluate.py's "normalised M_F"
column, next to the raw M_F).

`--config=configs/cub_vgg.py:runlocal`: 64 training images at 64 px, one
epoch per stage, to check the setup on a laptop.
"""

from dre_jax import config as config_lib


def get_config(arg=None):
  return config_lib.paper_config("cub", "vgg19", classifier_epochs=30,
                                 arg=arg)
