"""dre_jax: the Differentiated Relevance Estimator (DRE) in JAX/Flax.

Where to find each part of the paper:

* Eq. 1 (perturbation psi) and the training backgrounds: `dre_jax.perturbation`.
* Eq. 3-4 (class-related spatial filter, embedding loss), the bottleneck cells and
  the mask generator G (Sec. 3.2.2, Sec. 4.1 "Implementation"): `dre_jax.generator`.
* Eq. 5-8 and 13 (distribution controller C, its pdf and inverse): `dre_jax.controller`.
* Eq. 9 (the training objective) and the full estimator M = upsample(C(G(E(I), t))):
  `dre_jax.estimator`; the stage-2 objectives by name (Eq. 9, the constraints
  of Sec. 4.4.3, MGnet's Eq. 2): `dre_jax.training.objectives`.
* Eqs. 10 and 11 (faithfulness M_F, explainability M_E): `dre_jax.metrics`;
  running them over a dataset and drawing masks: `dre_jax.evaluation`.
* The frozen classifier every explainer shares: `dre_jax.classifier`; the
  architectures with feature taps (ResNet50, VGG19, GoogLeNet,
  EfficientNet-Lite0): `dre_jax.models`.
* File formats: the trained-estimator workdir (`load_estimator`), classifier
  directories, torchvision `.pth` import, the released `model-1.ckpt`: `dre_jax.io`.
* Datasets (CUB, ImageNet + boxes, Places365, Tux Paint composites): `dre_jax.data`.
* The experiment config (defaults of Sec. 4.1, validation): `dre_jax.config`.
* The two-stage training of Sec. 4.1, data parallelism, checkpoints:
  `dre_jax.training`.
* Explaining one's own photos (`explain_images`, what `dre-explain` writes):
  `dre_jax.app`.
* The command-line tools (`dre-train`, `dre-evaluate`, `dre-explain`,
  `dre-convert`): `dre_jax.cli`; the pip extras each feature needs:
  `dre_jax.extras`.
"""

import sys

if sys.version_info < (3, 11):
  sys.exit(f"dre_jax needs Python 3.11 or newer, this is "
           f"{sys.version.split()[0]}: create the environment with python3.11 "
           "(or newer) -m venv")

__version__ = "0.1.0"


def __getattr__(name):
  # `dre_jax.explain_images` (explain your own photos) without importing JAX
  # on `import dre_jax.<module>`.
  if name == "explain_images":
    from dre_jax.app.running import explain_images  # pylint: disable=import-outside-toplevel
    return explain_images
  raise AttributeError(f"module 'dre_jax' has no attribute {name!r}")
