r"""DRE for torchvision's ImageNet ResNet50 (paper Sec. 4.2, Table 3 "ImageNet").

    python train.py --config=configs/imagenet_resnet.py --workdir=$HOME/dre/imagenet_resnet \
        --config.model.torch_weights=$HOME/weights/resnet50-0676ba61.pth \
        --config.dataset.manual_dir=$HOME/ilsvrc2012 --config.dataset.download=True

    python evaluate.py --config=configs/imagenet_resnet.py --workdir=$HOME/dre/imagenet_resnet \
        --config.model.torch_weights=... --config.dataset.boxes_dir=$HOME/ilsvrc2012/bbox_val

The classifier is used as it is (no fine-tuning; the weights path is
required). TFDS `imagenet2012` needs ILSVRC2012_img_{train,val}.tar in
`manual_dir`; the first run builds the TFRecords (hours). M_E (Eq. 11,
Table 4) needs the validation boxes: `config.dataset.boxes_dir`, the folder of
XML files in ILSVRC2012_bbox_val_v3.tgz (image-net.org). Stage 1 for one
epoch, stage 2 for 10 epochs of the 1.28M training images, batch 64, Adam 1e-2
halved every 3 epochs, 224 px (Sec. 4.1).

Hardware: meant for a TPU v3-8/v4-8 or one host with 8 GPUs; for a pod run the
same command on every host. Not run in this project (no GPU, no ImageNet).
Time (an estimate, not measured): 14M DRE images (1 + 10 epochs), roughly a
day on 8 V100-class GPUs.
Should reach (the paper's numbers, not measured here): ranking-based M_F 77.13
and M_E 83.02 (Table 3's M_F is min-max normalised per image over the compared methods,
evaluate.py's "normalised M_F" column; Table 4's M_E is not normalised).

`:runlocal`: 64 training images at 64 px, one epoch per stage.
"""

from dre_jax import config as config_lib


def get_config(arg=None):
  return config_lib.paper_config("imagenet", "resnet50", arg=arg)
