"""dre_jax: the Differentiated Relevance Estimator (DRE) in JAX/Flax.

Where to find each part of the paper:

* Eq. 1 (perturbation psi) and the training backgrounds: `dre_jax.perturbation`.
* Eq. 3-4 (class-related spatial filter, embedding loss), the bottleneck cells and
  the mask generator G (Sec. 3.2.2, Sec. 4.1 "Implementation"): `dre_jax.generator`.
* Eq. 5-8 and 13 (distribution controller C, its pdf and inverse): `dre_jax.controller`.
* Eq. 9 (the training objective) and the full estimator M = upsample(C(G(E(I), t))):
  `dre_jax.estimator`.
* Eqs. 10 and 11 (faithfulness M_F, explainability M_E): `dre_jax.metrics`;
  running them over a dataset and drawing masks: `dre_jax.evaluation`.
* Classifiers with feature taps (ResNet50, VGG19, GoogLeNet, EfficientNet-Lite0)
  and torchvision weight import: `dre_jax.models`.
* Datasets (CUB, ImageNet + boxes, Places365, Tux Paint composites): `dre_jax.data`.
* The two-stage training of Sec. 4.1, data parallelism, checkpoints:
  `dre_jax.training` (CLI: `train.py`, `evaluate.py`).
"""

__version__ = "0.1.0"
