"""PyTorch state_dict -> Flax variables, and converted checkpoints on disk.

    python -m dre_jax.models.convert --arch resnet50 \
        --torch-weights resnet50.pth --out /tmp/resnet50 [--num-classes 200]

reads a `torch.save` file without torch (`pth.load_state_dict`), maps every
Flax variable of the registered architecture to its PyTorch key
(`ClassifierSpec.torch_key`), transposes kernels to Flax's layout and writes an
orbax checkpoint that `load_classifier` reads back.

Layouts: a conv kernel is OIHW in PyTorch and HWIO in Flax (a depthwise
`(C, 1, k, k)` becomes `(k, k, 1, C)` by the same transpose); a dense kernel
is `(out, in)` in PyTorch and `(in, out)` in Flax; everything else (biases,
BatchNorm scale/bias/mean/var, embeddings) is stored alike.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Callable, Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from dre_jax import atomic
from dre_jax.models import pth
from dre_jax.models import registry

_METADATA_FILE = "classifier.json"
_VARIABLES_DIR = "variables"

Path = tuple[str, ...]


def variable_shapes(spec: registry.ClassifierSpec, num_classes: int = 1000,
                    dtype=jnp.float32) -> dict[Path, jax.ShapeDtypeStruct]:
  """Flat `{("params", ..., "kernel"): ShapeDtypeStruct}` of the spec's model.

  Computed with `jax.eval_shape` at `spec.input_size`: nothing is allocated.
  """
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
      f"of the classifier keys {keys}; pass num_classes explicitly")


def convert_state_dict(shapes: Mapping[Path, jax.ShapeDtypeStruct],
                       state_dict: Mapping[str, np.ndarray],
                       torch_key: Callable[[Path], str],
                       torch_ignore: tuple[str, ...] = (),
                       target: str = "the model") -> dict[str, Any]:
  """Fills Flax variables of the given shapes from a PyTorch state_dict.

  Args:
    shapes: flat `{("params", ..., "kernel"): ShapeDtypeStruct}` to fill.
    state_dict: `{torch_key: array}`.
    torch_key: the PyTorch key of each Flax path.
    torch_ignore: prefixes of PyTorch keys without a Flax counterpart
      (`num_batches_tracked` is always ignored).
    target: what the variables are for, in error messages.
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
    raise ValueError(
        f"the checkpoint does not fit {target} ({len(problems)} problems):"
        "\n  " + "\n  ".join(problems))
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
    ValueError: listing every missing key, unexpected key and shape mismatch.
  """
  if num_classes is None:
    num_classes = infer_num_classes(spec, state_dict)
  return convert_state_dict(
      variable_shapes(spec, num_classes, dtype), state_dict, spec.torch_key,
      spec.torch_ignore, f"{spec.name!r} with {num_classes} classes")


def save_classifier(directory: str | os.PathLike, spec_name: str,
                    num_classes: int, variables: Mapping[str, Any]) -> str:
  """Writes converted variables and `{arch, num_classes}` to `directory`.

  Layout: `directory/variables/` (an orbax checkpoint, written to a temporary
  directory and renamed when complete) and `directory/classifier.json`
  (written last, also by rename), so a half-written directory never looks
  complete. Returns the absolute directory.
  """
  registry.get(spec_name)  # fail early on unknown names
  directory = os.path.abspath(directory)
  if os.path.exists(os.path.join(directory, _VARIABLES_DIR)):
    raise FileExistsError(
        f"{directory} already holds a converted classifier; remove it or "
        "choose another --out")
  os.makedirs(directory, exist_ok=True)
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.join(directory, _VARIABLES_DIR),
                      jax.tree.map(np.asarray, dict(variables)))
  if jax.process_index() == 0:  # orbax's save is collective; the JSON is not
    atomic.write_atomic(os.path.join(directory, _METADATA_FILE), json.dumps(
        {"arch": spec_name, "num_classes": int(num_classes)}))
  return directory


def load_classifier(directory: str | os.PathLike, dtype=jnp.float32
                    ) -> tuple[registry.ClassifierSpec, Any, dict[str, Any]]:
  """Reads what `save_classifier` wrote: `(spec, module, variables)`."""
  directory = os.path.abspath(directory)
  meta_path = os.path.join(directory, _METADATA_FILE)
  if not os.path.isfile(meta_path):
    raise FileNotFoundError(
        f"{directory} is not a converted classifier (no {_METADATA_FILE}); "
        "write one with `python -m dre_jax.models.convert`")
  try:
    with open(meta_path) as f:
      meta = json.load(f)
    arch, num_classes = meta["arch"], int(meta["num_classes"])
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f"{meta_path} is broken ({e!r}); convert again") from None
  spec = registry.get(arch)
  module = spec.build(num_classes=num_classes, dtype=dtype)
  target = flax.traverse_util.unflatten_dict(
      variable_shapes(spec, num_classes, dtype))
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      variables = checkpointer.restore(
          os.path.join(directory, _VARIABLES_DIR), target)
  except Exception as e:  # orbax raises many types for a damaged directory.
    raise ValueError(
        f"cannot restore the variables in {directory} ({type(e).__name__}: "
        f"{e}); convert again") from None
  return spec, module, variables


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(
      prog="python -m dre_jax.models.convert", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--arch", required=True, choices=registry.names())
  parser.add_argument("--torch-weights", required=True,
                      help="a torch.save file (.pth/.ckpt) of a state_dict")
  parser.add_argument("--state-dict-key", default=None,
                      help="entry of a file that nests state_dicts, e.g. "
                      "'state_dict'")
  parser.add_argument("--out", required=True, help="directory to write")
  parser.add_argument("--num-classes", type=int, default=None,
                      help="default: read off the checkpoint's classifier")
  args = parser.parse_args(argv)

  spec = registry.get(args.arch)
  state_dict = pth.load_state_dict(args.torch_weights, args.state_dict_key)
  num_classes = args.num_classes or infer_num_classes(spec, state_dict)
  variables = torch_to_flax(spec, state_dict, num_classes)
  out = save_classifier(args.out, args.arch, num_classes, variables)
  count = sum(x.size for x in jax.tree.leaves(variables.get("params", {})))
  print(f"wrote {out}: {args.arch} with {num_classes} classes, {count:,} "
        f"parameters, from {args.torch_weights}")


if __name__ == "__main__":
  main()
