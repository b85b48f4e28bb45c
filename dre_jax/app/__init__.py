"""Explaining a user's own images: `dre_jax.explain_images` (notebooks) and `dre-explain`.

    from dre_jax import explain_images
    out = explain_images(["cat.jpg", "photos/"], arch="efficientnet_lite0")
    out = explain_images("cat.jpg", workdir="outputs/quickstart",
                         methods=("dre", "gcam"))
    out.maps["dre"]        # [N, S, S] float32, S = the classifier's input size
    out.targets            # [N] int32, the explained classes
    out.probabilities      # [N, K] float32, softmax of the classifier on each image
    out.images             # [N, S, S, 3] float32 in [0, 1], what was explained
    out.top(5)             # ([N, 5] classes, [N, 5] probabilities)
    out.failures           # [ImageError]: files that could not be read, with why

One module per job:

* `loading`: what explains (`load_model` -> `Model`): a trained workdir, the
  released weights, a pretrained architecture or a classifier directory; the
  class names and `resolve_target`.
* `inputs`: paths, Pillow images and arrays -> S x S crops with their classes.
* `running`: the methods bound (`explainers.bind`) and compiled, the batches,
  `Explanations`, `explain_batches` and `explain_images`.
* `page`: what `dre-explain` writes (maps, PNGs, figures, `index.html`).
"""

from dre_jax.app.loading import Model, load_model, resolve_target
from dre_jax.app.running import (Explanations, default_methods, explain_batches,
                                 explain_images, runnable_methods)

__all__ = ["Explanations", "Model", "default_methods", "explain_batches",
           "explain_images", "load_model", "resolve_target", "runnable_methods"]
