"""Atomic file writes: results and metadata are never left half-written."""

from __future__ import annotations

import os
import tempfile


def _default_mode() -> int:
  """0o666 less the process umask: what `open(path, "w")` would create."""
  umask = os.umask(0)
  os.umask(umask)
  return 0o666 & ~umask


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
  """Writes `data` to `path` through a temporary file in the same directory and
  a rename, so a reader sees the old file or the new one, never a partial one.

  The file gets the permissions a plain `open(path, "w")` gives (0644 under
  the usual umask), not the temporary file's 0600."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
  try:
    with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as f:
      f.write(data)
    os.chmod(tmp, _default_mode())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
