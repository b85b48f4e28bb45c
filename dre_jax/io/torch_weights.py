"""PyTorch state_dict -> Flax variables of a registered architecture.

`torch_to_flax(spec, state_dict)` maps every Flax variable of the
architecture to its PyTorch key (`ClassifierSpec.torch_key`) and transposes
kernels to Flax's layout; the state_dict comes from a `torch.save` file read
without torch (`dre_jax.io.pth.load_state_dict`). The command line
`dre-convert` (`dre_jax.cli.convert`) writes the result as a classifier directory
(`dre_jax.io.classifier_dir`).

Checkpoints of a model wrapped in `nn.DataParallel` or DDP prefix every key
with "module."; that prefix is removed (`strip_data_parallel`). When the keys
do not fit the architecture, the error says which registered architecture they
fit, if one does (`fitting_architectures`).

Layouts: a conv kernel is OIHW in PyTorch and HWIO in Flax (a depthwise
`(C, 1, k, k)` becomes `(k, k, 1, C)` by the same transpose); a dense kernel
is `(out, in)` in PyTorch and `(in, out)` in Flax; everything else (biases,
BatchNorm scale/bias/mean/var, embeddings) is stored alike.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np

from dre_jax.io import pth
from dre_jax.models import efficientnet_lite
from dre_jax.models import registry

Path = tuple[str, ...]
DATA_PARALLEL_PREFIX = "module."
_MAX_PROBLEMS = 12  # listed in an error; the rest are counted


def strip_data_parallel(state_dict: Mapping[str, np.ndarray]
                        ) -> tuple[dict[str, np.ndarray], bool]:
  """(state_dict without the "module." prefix that DataParallel/DDP adds to
  every key, whether it had one)."""
  if state_dict and all(k.startswith(DATA_PARALLEL_PREFIX) for k in state_dict):
    n = len(DATA_PARALLEL_PREFIX)
    return {k[n:]: v for k, v in state_dict.items()}, True
  return dict(state_dict), False


def fitting_architectures(state_dict: Mapping[str, np.ndarray]) -> list[str]:
  """The registered architectures whose variables the state_dict fills exactly
  (any number of classes)."""
  state_dict, _ = strip_data_parallel(state_dict)
  keys = {k for k in state_dict if not k.endswith("num_batches_tracked")}
  fits = []
  for name in registry.names():
    spec = registry.get(name)
    wanted = {spec.torch_key(p) for p in variable_shapes(spec, 2)}
    if wanted != {k for k in keys if not k.startswith(spec.torch_ignore)}:
      continue
    try:
      _convert(spec, state_dict, None, jnp.float32)
    except ValueError:
      continue
    fits.append(name)
  return fits


def _fit_hint(spec: registry.ClassifierSpec,
              state_dict: Mapping[str, np.ndarray]) -> str:
  fits = [n for n in fitting_architectures(state_dict) if n != spec.name]
  if fits:
    return (f"; these weights fit the registered architecture "
            f"{' and '.join(fits)}: use --arch {fits[0]} (config.model.name="
            f"{fits[0]})")
  return "; they fit no registered architecture (dre_jax.models.names())"


def variable_shapes(spec: registry.ClassifierSpec, num_classes: int = 1000,
                    dtype=jnp.float32) -> dict[Path, jax.ShapeDtypeStruct]:
  """Flat `{("params", ..., "kernel"): ShapeDtypeStruct}` of the spec's model.

  Computed with `jax.eval_shape` at `spec.input_size`: nothing is allocated.
  """
  return dict(_variable_shapes(spec, num_classes, jnp.dtype(dtype)))


@functools.lru_cache(maxsize=64)
def _variable_shapes(spec, num_classes: int, dtype):
  module = spec.build(num_classes=num_classes, dtype=dtype)
  x = jax.ShapeDtypeStruct((1, spec.input_size, spec.input_size, 3),
                           jnp.float32)
  template = jax.eval_shape(
      lambda x: module.init(jax.random.key(0), x, train=False), x)
  return flax.traverse_util.flatten_dict(flax.core.unfreeze(template))


def _to_flax(path: Path, array: np.ndarray) -> np.ndarray:
  """One PyTorch tensor in Flax layout (see the module docstring)."""
  if path[-1] == "kernel" and array.ndim == 4:
    return array.transpose(2, 3, 1, 0)
  if path[-1] == "kernel" and array.ndim == 2:
    return array.T
  return array


def _torch_shape(path: Path, flax_shape: tuple[int, ...]) -> tuple[int, ...]:
  """The PyTorch shape that `_to_flax` turns into `flax_shape`."""
  if path[-1] == "kernel" and len(flax_shape) == 4:
    h, w, i, o = flax_shape
    return (o, i, h, w)
  if path[-1] == "kernel" and len(flax_shape) == 2:
    return flax_shape[::-1]
  return tuple(flax_shape)


def infer_num_classes(spec: registry.ClassifierSpec,
                      state_dict: Mapping[str, np.ndarray]) -> int:
  """Reads the class count off the checkpoint's classifier weight.

  The classifier is found as the variables whose shapes change with
  `num_classes` (the last dense layer); its bias has shape `[num_classes]`.
  """
  state_dict, _ = strip_data_parallel(state_dict)
  shapes_a = variable_shapes(spec, num_classes=1)
  shapes_b = variable_shapes(spec, num_classes=2)
  heads = [p for p in shapes_a if shapes_a[p].shape != shapes_b[p].shape]
  for path in heads:
    key = spec.torch_key(path)
    if key in state_dict:
      return int(_to_flax(path, np.asarray(state_dict[key])).shape[-1])
  keys = [spec.torch_key(p) for p in heads]
  raise ValueError(
      f"cannot infer num_classes for {spec.name!r}: the checkpoint has none "
      f"of its classifier keys {keys}{_fit_hint(spec, state_dict)}")


def convert_state_dict(shapes: Mapping[Path, jax.ShapeDtypeStruct],
                       state_dict: Mapping[str, np.ndarray],
                       torch_key: Callable[[Path], str],
                       torch_ignore: tuple[str, ...] = (),
                       target: str = "the model",
                       max_listed: int | None = None) -> dict[str, Any]:
  """Fills Flax variables of the given shapes from a PyTorch state_dict.

  Args:
    shapes: flat `{("params", ..., "kernel"): ShapeDtypeStruct}` to fill.
    state_dict: `{torch_key: array}`.
    torch_key: the PyTorch key of each Flax path.
    torch_ignore: prefixes of PyTorch keys without a Flax counterpart
      (`num_batches_tracked` is always ignored).
    target: what the variables are for, in error messages.
    max_listed: list at most this many problems in the error (count the
      rest); None lists all.
  Returns:
    Nested `{"params": ..., "batch_stats": ...}` of numpy arrays.
  Raises:
    ValueError: listing every missing key, unexpected key and shape mismatch.
  """
  flat, problems, used = {}, [], set()
  for path, shape in shapes.items():
    key = torch_key(path)
    used.add(key)
    if key not in state_dict:
      problems.append(f"missing key {key} (for Flax {'/'.join(path)})")
      continue
    array = np.asarray(state_dict[key])
    expected = _torch_shape(path, shape.shape)
    if array.shape != expected:
      problems.append(
          f"shape mismatch for {key}: checkpoint has {array.shape}, model "
          f"expects {expected} (Flax {'/'.join(path)} {shape.shape})")
      continue
    flat[path] = _to_flax(path, array).astype(shape.dtype)
  unexpected = sorted(
      k for k in state_dict if k not in used
      and not k.endswith("num_batches_tracked")
      and not k.startswith(tuple(torch_ignore)))
  problems += [f"unexpected key {k}" for k in unexpected]
  if problems:
    listed = problems[:max_listed]
    if len(problems) > len(listed):
      listed.append(f"... and {len(problems) - len(listed)} more")
    raise ValueError(
        f"the checkpoint does not fit {target} ({len(problems)} problems):"
        "\n  " + "\n  ".join(listed))
  return flax.traverse_util.unflatten_dict(flat)


def torch_to_flax(spec: registry.ClassifierSpec,
                  state_dict: Mapping[str, np.ndarray],
                  num_classes: int | None = None,
                  dtype=jnp.float32) -> dict[str, Any]:
  """Converts a PyTorch state_dict to the Flax variables of `spec`'s model.

  Args:
    spec: the architecture; `spec.torch_key` names the PyTorch key of each
      Flax variable and `spec.torch_ignore` the PyTorch prefixes to skip.
    state_dict: `{torch_key: array}` as from `pth.load_state_dict`.
    num_classes: size of the classifier; None reads it off the checkpoint.
    dtype: computation dtype of the module the variables are for.
  Returns:
    `{"params": ..., "batch_stats": ...}` (the collections the module has),
    nested dicts of numpy arrays in the variables' dtypes.
  Raises:
    ValueError: listing the missing keys, unexpected keys and shape
      mismatches, and which registered architecture the keys fit instead.
  """
  state_dict, _ = strip_data_parallel(state_dict)
  try:
    return _convert(spec, state_dict, num_classes, dtype)
  except ValueError as e:
    raise ValueError(f"{e}{_fit_hint(spec, state_dict)}") from None


def _convert(spec, state_dict, num_classes, dtype) -> dict[str, Any]:
  if num_classes is None:
    num_classes = infer_num_classes(spec, state_dict)
  return convert_state_dict(
      variable_shapes(spec, num_classes, dtype), state_dict, spec.torch_key,
      spec.torch_ignore, f"{spec.name!r} with {num_classes} classes",
      max_listed=_MAX_PROBLEMS)


def load_efficientnet_lite0(dtype=jnp.float32):
  """`(spec, module, variables)` of EfficientNet-Lite0 with ImageNet weights
  (`dre_jax.models.efficientnet_lite.pretrained_weights_path`)."""
  spec = efficientnet_lite.EFFICIENTNET_LITE0
  state_dict = pth.load_state_dict(efficientnet_lite.pretrained_weights_path())
  variables = torch_to_flax(spec, state_dict, num_classes=1000, dtype=dtype)
  return spec, spec.build(1000, dtype), variables
