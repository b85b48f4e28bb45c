"""The explainers DRE is compared with (paper Sec. 4.1, Table 2), behind one registry.

    from dre_jax import explainers
    explainers.names()      # ['dre', 'finv', 'gcam', 'gcam++', 'itgrad', 'mgnet', ...]
    fn = explainers.get("smgrad")
    saliency = fn(classifier, images, target, key, samples=50)   # [N, H, W] float32

Every explainer is a function

    fn(classifier, images, target, key, **settings) -> saliency [N, H, W] float32

for a whole batch: `classifier` the frozen `dre_jax.classifier.Classifier` (a
pytree), `images` [N, H, W, 3] float in [0, 1], `target` [N] int classes to
explain (None: the classifier's argmax), `key` a `jax.random` key (the
deterministic methods accept None). Higher saliency = more relevant. The
function is pure and jittable with the classifier as an argument; settings are
static Python values:

    fn = jax.jit(functools.partial(explainers.get("itgrad"), steps=50))
    saliency = fn(classifier, images, target, key)

`default_config(name)` returns a method's settings with the original papers'
defaults (an `ml_collections.ConfigDict`; each method's docstring gives the
source of each default); an unknown setting raises a TypeError naming the known
ones. `passes(name, **settings)` is the number of classifier forward + backward
passes per image (the benchmark's unit).

Methods (registry names are the paper's abbreviations), one module per family:

  vgrad, smgrad, itgrad   `gradients`     Simonyan 2014, Smilkov 2017, Sundararajan 2017
  gcam, gcam++            `cam`           Selvaraju 2017, Chattopadhay 2018
  mpert, xpert            `perturbation`  Fong & Vedaldi 2017, Fong, Patrick & Vedaldi 2019
  finv                    `inversion`     Du, Liu, Song, Hu 2018
  mgnet, dre              `generators`    Dabkowski & Gal 2017 (objective: `mgnet`), DRE

The trained methods (`dre`, `mgnet`, and DRE+) need their generator:
`fn = bind("dre", dre=Generator(estimator, variables))` binds what was trained
(`Method.needs` says which generators: "dre", "mgnet" or both; a missing one
raises `MissingGenerator`, naming what to train) and returns
`fn(classifier, images, target, key)` with its settings (`settings=`) bound;
`fn, classifier = load("dre", DIR)` loads what `train.py` wrote to DIR and the
classifier saved with it; `get("dre", workdir=DIR)` the function alone.

Each `Method` (`method(name)`) also carries its display name, its row of the
paper's Table 2 (`table2`), whether its map is a "mask" or an "attribution"
(`output`), and `quick_settings(name)`, its counts cut for tests and
benchmarks. Register a new method with `@register(name, passes=...,
reference=..., display=...)` on its explain function (trained ones also pass
`needs=` and `load=`).
"""

from dre_jax.explainers.registry import (GENERATORS, OUTPUTS, Generator, Method,
                                         MissingGenerator, PaperMeans, PROPOSED,
                                         Table2, arguments,
                                         bind, check_settings, default_config,
                                         parse_settings,
                                         get, load, method, names, passes,
                                         quick_settings, register)
from dre_jax.explainers import gradients  # noqa: F401  (vgrad, smgrad, itgrad)
from dre_jax.explainers import cam  # noqa: F401  (gcam, gcam++)
from dre_jax.explainers import mask_optimisation  # noqa: F401  (mpert, xpert)
from dre_jax.explainers import inversion  # noqa: F401  (finv)
from dre_jax.explainers import generators  # noqa: F401  (dre, mgnet)
from dre_jax.explainers import dre_plus  # noqa: F401  (dre+self, dre+mgnet)

__all__ = ["GENERATORS", "OUTPUTS", "Generator", "Method", "MissingGenerator", "PaperMeans",
           "PROPOSED", "Table2",
           "arguments", "bind", "check_settings", "default_config", "get", "load",
           "parse_settings",
           "method", "names", "passes", "quick_settings", "register"]
