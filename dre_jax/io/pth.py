"""Reads PyTorch checkpoints (`torch.save` files) into numpy, without torch.

Two on-disk formats exist:

* zip (torch >= 1.6, the default): `<prefix>/data.pkl` is the pickled object,
  each tensor storage is a raw little- (or, per `<prefix>/byteorder`, big-)
  endian file `<prefix>/data/<key>`; `<prefix>` is whatever the writer chose
  ("archive", or the file's stem).
* legacy (torch < 1.6, or `_use_new_zipfile_serialization=False`): five
  pickles and raw data in one stream: magic number, protocol version, system
  info, the object, the sorted list of storage keys; then, for each key in that
  order, an int64 element count followed by the storage's bytes.

In both, tensors are pickled as `torch._utils._rebuild_tensor_v2(storage,
offset, size, stride, ...)` and storages as persistent ids
`("storage", torch.<Type>Storage, key, location, numel, ...)`. The unpickler
here resolves only those few globals (to inert placeholders, never to code)
and refuses every other one, so a malicious file cannot run anything.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pickle
import struct
import zipfile
from typing import Any, BinaryIO, Mapping

import ml_dtypes
import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
}


class CheckpointFormatError(ValueError):
  """A file that is not a readable PyTorch checkpoint of tensors."""

  def __init__(self, path: str | os.PathLike, problem: str):
    super().__init__(f"cannot read PyTorch checkpoint {os.fspath(path)!r}: "
                     f"{problem}")


@dataclasses.dataclass(frozen=True)
class _StorageType:
  """Stands for the class `torch.<name>`; only its element type matters."""
  name: str

  @property
  def dtype(self) -> np.dtype:
    return np.dtype(_STORAGE_DTYPES[self.name])


@dataclasses.dataclass
class _Storage:
  """A flat typed buffer; `data` is filled when the bytes are read."""
  dtype: np.dtype
  numel: int
  data: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class _Tensor:
  """A strided view into a `_Storage`, materialised once storages are read."""
  storage: _Storage
  offset: int
  size: tuple[int, ...]
  stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *unused_args):
  if not isinstance(storage, _Storage):
    raise TypeError(f"a tensor on a {type(storage).__name__}, not a storage")
  return _Tensor(storage, int(storage_offset), tuple(map(int, size)),
                 tuple(map(int, stride)))


def _rebuild_parameter(data, *unused_args):
  return data


# (module, name) -> what the unpickler hands back for that global.
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
  """Resolves only `_ALLOWED_GLOBALS`; storages go through `load_storage`."""

  def __init__(self, file: BinaryIO, path: str | os.PathLike, load_storage):
    super().__init__(file)
    self._path = path
    self._load_storage = load_storage

  def find_class(self, module: str, name: str):
    try:
      return _ALLOWED_GLOBALS[(module, name)]
    except KeyError:
      raise CheckpointFormatError(
          self._path, f"the pickle refers to the global {module}.{name}, "
          "which a file of tensors never needs; refusing to load it (its code "
          "would run); a whole model saved with torch.save(model) is refused: "
          "save its weights with torch.save(model.state_dict(), path) "
          "instead") from None

  def persistent_load(self, pid):
    if (not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage"
        or not isinstance(pid[1], _StorageType)):
      raise CheckpointFormatError(
          self._path, f"unexpected persistent id {pid!r} (expected a tensor "
          "storage)")
    _, storage_type, key, _, numel, *view = pid
    if view and view[0] is not None:
      raise CheckpointFormatError(
          self._path, "storage views (torch < 0.4 files) are not supported")
    return self._load_storage(str(key), storage_type.dtype, int(numel))


def _unpickle(file: BinaryIO, path, load_storage=None) -> Any:
  def no_storage(key, dtype, numel):
    raise CheckpointFormatError(path, "a storage in a header pickle")
  try:
    return _RestrictedUnpickler(file, path, load_storage or no_storage).load()
  except CheckpointFormatError:
    raise
  except Exception as e:  # pickle raises many types on garbage input.
    raise CheckpointFormatError(
        path, f"broken pickle ({type(e).__name__}: {e})") from None


def _materialise(tree: Any, path) -> Any:
  """Replaces every `_Tensor` in nested dicts/lists/tuples by a numpy array."""
  if isinstance(tree, _Tensor):
    return _tensor_to_numpy(tree, path)
  if isinstance(tree, Mapping):
    return {k: _materialise(v, path) for k, v in tree.items()}
  if isinstance(tree, (list, tuple)):
    return type(tree)(_materialise(v, path) for v in tree)
  return tree


def _tensor_to_numpy(t: _Tensor, path) -> np.ndarray:
  data = t.storage.data
  if len(t.size) != len(t.stride):
    raise CheckpointFormatError(path, f"tensor of size {t.size} has strides "
                                f"{t.stride}")
  if 0 in t.size:
    return np.zeros(t.size, data.dtype)
  last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride))
  if t.offset < 0 or min(t.stride, default=0) < 0 or last >= data.size:
    raise CheckpointFormatError(
        path, f"tensor (size {t.size}, stride {t.stride}, offset {t.offset}) "
        f"reaches past its storage of {data.size} elements")
  return np.lib.stride_tricks.as_strided(
      data[t.offset:], t.size, [s * data.itemsize for s in t.stride]).copy()


def _read_storage(raw: bytes, dtype: np.dtype, numel: int, byteorder: str,
                  path, key: str) -> np.ndarray:
  if len(raw) < numel * dtype.itemsize:
    raise CheckpointFormatError(
        path, f"storage {key} holds {len(raw)} bytes, expected "
        f"{numel} x {dtype.itemsize} (the file is truncated)")
  stored = dtype.newbyteorder("<" if byteorder == "little" else ">")
  return np.frombuffer(raw, stored, count=numel).astype(dtype)


def _load_zip(path) -> Any:
  try:
    with zipfile.ZipFile(path) as zf:
      names = zf.namelist()
      pickles = [n for n in names if n.endswith("data.pkl")
                 and n.count("/") == 1]
      if len(pickles) != 1:
        raise CheckpointFormatError(
            path, "a zip file without exactly one '<prefix>/data.pkl' "
            f"(found {pickles or 'none'}); not written by torch.save")
      prefix = pickles[0][:-len("data.pkl")]
      byteorder = "little"
      if prefix + "byteorder" in names:
        byteorder = zf.read(prefix + "byteorder").decode()

      storages: dict[str, _Storage] = {}

      def load_storage(key, dtype, numel):
        if key not in storages:
          member = f"{prefix}data/{key}"
          if member not in names:
            raise CheckpointFormatError(path, f"storage {member} is missing")
          storages[key] = _Storage(dtype, numel, _read_storage(
              zf.read(member), dtype, numel, byteorder, path, key))
        return storages[key]

      with zf.open(pickles[0]) as f:
        tree = _unpickle(f, path, load_storage)
  except (zipfile.BadZipFile, EOFError, OSError) as e:
    raise CheckpointFormatError(path, f"broken zip file ({e})") from None
  return _materialise(tree, path)


def _load_legacy(path) -> Any:
  with open(path, "rb") as f:
    if _unpickle(f, path) != _LEGACY_MAGIC:
      raise CheckpointFormatError(
          path, "a pickle, but not a torch.save file (no torch magic number)")
    if (version := _unpickle(f, path)) != _LEGACY_PROTOCOL:
      raise CheckpointFormatError(path, f"legacy protocol {version!r}, "
                                  f"expected {_LEGACY_PROTOCOL}")
    sys_info = _unpickle(f, path)
    byteorder = "little" if sys_info.get("little_endian", True) else "big"
    storages: dict[str, _Storage] = {}

    def load_storage(key, dtype, numel):
      return storages.setdefault(key, _Storage(dtype, numel))

    tree = _unpickle(f, path, load_storage)
    keys = _unpickle(f, path)
    if sorted(storages) != sorted(map(str, keys)):
      raise CheckpointFormatError(
          path, f"the storage list {keys} does not match the storages the "
          f"object uses {sorted(storages)}")
    for key in keys:
      storage = storages[str(key)]
      header = f.read(8)
      if len(header) < 8:
        raise CheckpointFormatError(path, f"file ends before storage {key}")
      (numel,) = struct.unpack("<q", header)
      if numel != storage.numel:
        raise CheckpointFormatError(
            path, f"storage {key} has {numel} elements, the pickle says "
            f"{storage.numel}")
      raw = f.read(numel * storage.dtype.itemsize)
      storage.data = _read_storage(raw, storage.dtype, numel, byteorder,
                                   path, str(key))
  return _materialise(tree, path)


def load_checkpoint(path: str | os.PathLike) -> Any:
  """Loads a whole `torch.save` file: tensors become numpy arrays.

  Returns the saved object with every tensor replaced by an `np.ndarray` (the
  tensor's dtype; bfloat16 as `ml_dtypes.bfloat16`) and every (Ordered)dict by
  a plain dict, e.g. a state_dict `{"conv.weight": array, ...}` or a dict of
  state_dicts `{"up2": {...}, "up1": {...}}`.

  Raises:
    CheckpointFormatError: the file is missing, not a zip or legacy torch file,
      truncated, or its pickle names anything besides tensors and dicts.
  """
  path = os.path.expanduser(os.fspath(path))
  if not os.path.isfile(path):
    raise CheckpointFormatError(path, "no such file")
  if zipfile.is_zipfile(path):
    return _load_zip(path)
  with open(path, "rb") as f:
    head = f.read(2)
  if head == b"PK":
    raise CheckpointFormatError(
        path, "a zip archive that cannot be opened (truncated or corrupt)")
  if len(head) == 2 and head[0] == pickle.PROTO[0] and head[1] >= 2:
    return _load_legacy(path)
  raise CheckpointFormatError(
      path, "neither a zip archive (torch >= 1.6) nor a binary pickle (legacy "
      "torch.save); is this really a .pth/.ckpt file?")


def load_state_dict(path: str | os.PathLike, key: str | None = None
                    ) -> dict[str, np.ndarray]:
  """Loads a flat `{name: array}` state_dict from a `torch.save` file.

  Args:
    path: the checkpoint.
    key: for files that nest state_dicts in a dict (`{"state_dict": {...}}`,
      or DRE's `{"up2": {...}, "selector_module": {...}, ...}`), which entry
      to return; None when the file itself is the state_dict.
  Returns:
    The tensors by name, as numpy arrays.
  """
  path = os.path.expanduser(os.fspath(path))
  tree = load_checkpoint(path)
  where = "the file"
  if key is not None:
    if not isinstance(tree, dict) or key not in tree:
      keys = list(tree) if isinstance(tree, dict) else type(tree).__name__
      raise KeyError(f"{os.fspath(path)!r} has no entry {key!r}; top-level "
                     f"entries: {keys}")
    tree, where = tree[key], f"entry {key!r}"
  if not isinstance(tree, dict):
    raise CheckpointFormatError(path, f"{where} is a {type(tree).__name__}, "
                                "not a state_dict")
  nested = [k for k, v in tree.items() if isinstance(v, dict)]
  if nested:
    raise CheckpointFormatError(
        path, f"{where} nests dicts under {nested}; pick the one that holds "
        f"the weights: --state-dict-key={nested[0]} (dre-convert) or "
        f"load_state_dict(path, key="
        f"{nested[0]!r})")
  others = {k: type(v).__name__ for k, v in tree.items()
            if not isinstance(v, np.ndarray)}
  if others:
    raise CheckpointFormatError(
        path, f"{where} has non-tensor entries {others}; not a state_dict")
  return tree
