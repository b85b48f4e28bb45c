"""File formats and loading, apart from training: what inference code imports.

* `workdir`: the trained-estimator directory that `train.py` writes;
  `load_estimator(workdir) -> (dre, classifier, generator_variables, meta)`.
* `classifier_dir`: a classifier's weights on disk (`save_classifier`,
  `load_classifier -> dre_jax.classifier.Classifier`).
* `pth`: `torch.save` files read into numpy without torch (and without running
  any of their code).
* `torch_weights`: PyTorch state_dicts -> Flax variables of a registered
  architecture (`torch_to_flax`; EfficientNet-Lite0's ImageNet weights:
  `load_efficientnet_lite0`); the CLI is `dre-convert`.
* `released_dre`: the authors' released ResNet50 generator (`model-1.ckpt`),
  `import_released_dre(path)`.
"""

from dre_jax.io.classifier_dir import load_classifier
from dre_jax.io.classifier_dir import save_classifier
from dre_jax.io.released_dre import import_released_dre
from dre_jax.io.workdir import load_estimator
