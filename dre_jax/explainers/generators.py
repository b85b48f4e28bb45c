"""The trained one-pass explainers: DRE and MGnet (a generator network each).

Both need the generator that `train.py` trained for this classifier:

    fn = explainers.get("dre", workdir="runs/cub_resnet")      # load_estimator
    fn = explainers.bind("mgnet", mgnet=explainers.Generator(dre, variables))
    saliency = fn(classifier, images, target, None)

or `explainers.load(name, workdir) -> (fn, classifier)` for the classifier saved
with it. `estimator` is the `dre_jax.estimator.DRE` that holds the generator
module; MGnet uses the same one (the same architecture), with its own mask
(`DRE.mgnet_masks_from_taps`, trained by
`dre_jax.training.objectives.mgnet_objective`). One forward pass of the
classifier (for the taps) and of the generator per image.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax.explainers import registry


def load_generator(workdir: str) -> dict[str, Any]:
  """{"estimator", "generator_variables", "classifier"} of what train.py wrote to `workdir`."""
  from dre_jax.io import load_estimator  # file formats stay out of the import path
  dre, classifier, variables, _ = load_estimator(workdir)
  return {"estimator": dre, "generator_variables": variables,
          "classifier": classifier}


def _one_pass(**_) -> float:
  # One classifier forward, half of a forward + input gradient in XLA's FLOP
  # count (ResNet50: 8.0 and 16.1 GFLOP/img); the generator comes on top.
  return 0.5


def _check(estimator: DRE, classifier: Classifier, images: jnp.ndarray) -> None:
  estimator.check_images(images)
  if estimator.spec.name != classifier.spec.name:
    raise ValueError(f"the generator was trained for {estimator.spec.name}, the "
                     f"classifier is {classifier.spec.name}; pass the classifier "
                     "it was trained for (explainers.load returns it)")


@registry.register("dre", passes=_one_pass, load=load_generator, needs=("dre",),
                   display="DRE", table2=registry.Table2(1, "-", "1"),
                   paper=registry.PaperMeans(74.37, 82.89),
                   output="mask",
                   reference="the DRE paper (TPAMI), Eq. 9")
def dre_explainer(classifier: Classifier, images: jnp.ndarray, target: jnp.ndarray,
                  key=None, *, estimator: DRE, generator_variables) -> jnp.ndarray:
  """DRE: M = upsample(C(G(E(I), t))) (`dre_jax.estimator.DRE.explain`). No settings.

  Returns [N, H, W] float32 in (0, 1).
  """
  del key
  _check(estimator, classifier, images)
  masks, _ = estimator.explain(classifier, generator_variables, images, target)
  return masks


@registry.register("mgnet", passes=_one_pass, load=load_generator,
                   needs=("mgnet",), display="MGnet",
                   table2=registry.Table2(2, "3", "1"),
                   paper=registry.PaperMeans(55.75, 82.67), output="mask",
                   reference="Dabkowski & Gal, NeurIPS 2017")
def mgnet_explainer(classifier: Classifier, images: jnp.ndarray, target: jnp.ndarray,
                    key=None, *, estimator: DRE, generator_variables) -> jnp.ndarray:
  """MGnet: M = upsample(sigmoid(G(E(I), t))) (`DRE.mgnet_masks_from_taps`). No settings.

  The generator must have been trained with the MGnet objective
  (`config.dre.objective = "mgnet"`). Returns [N, H, W] float32 in (0, 1).
  """
  del key
  _check(estimator, classifier, images)
  _, taps = classifier.logits_and_taps(images)
  return estimator.mgnet_masks_from_taps(generator_variables, taps, target,
                                        images.shape[1:3])
