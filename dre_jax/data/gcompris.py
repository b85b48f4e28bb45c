"""GCompris's photos as a folder to train DRE on (Debian's gcompris-qt-data).

    bash scripts/setup_env.sh --train-photos       # the package, then this module
    python -m dre_jax.data.gcompris --out=data/train_photos/gcompris
    python train.py --config=configs/folder.py:path=data/train_photos/gcompris ...

DRE trains on any unlabeled photos (paper Sec. 4.1; `dre_jax.data.folder`).
The photos here are the natural photos of a registry package that is *not*
one of the natural-photo test set's (`folder.TEST_ONLY`): the educational
suite GCompris ships about 250 photographs in five of its activities -
tools, household objects, fish, windmills and solar panels, monuments
(`categorization`), wild and farm animals (`erase`, `explore_world_animals`,
`explore_farm_animals`) and monuments of six countries (`explore_monuments`),
at 320 to 1,200 px, most with one object near the centre, some with several or
cut by the border.

GCompris stores each activity's files in a Qt resource file
(`/usr/share/gcompris-qt/rcc/<activity>.rcc`); `read_rcc` reads that format
(Qt's rcc, versions 1 to 3: a tree of named nodes, each file's bytes stored
plain or zlib-compressed by qCompress; zstd-compressed entries are refused with
a message) with the standard library only. `extract` writes every raster image
(JPEG, PNG, WebP) of `ACTIVITIES` under `out/<activity>/`, the path it has
below the activity's `resource/` folder, byte for byte, each file atomically;
a photo whose bytes another one already has is written once. It also writes
`manifest.json` (each file's source, size and SHA-256). Nothing is decoded
here: `dre_jax.data.folder` decodes the files when it opens the folder and
skips and counts any it cannot read.

Where the package is looked for: `--rcc_dir`, else
/usr/share/gcompris-qt/rcc (apt-get install gcompris-qt-data, as root), else
`LOCAL_DIR`'s copy (what scripts/setup_env.sh unpacks without root).
Licences: GPL-3+ for the program; the images carry their own free licences,
listed in the package's /usr/share/doc/gcompris-qt-data/copyright.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import sys
import zlib
from typing import Iterator, Sequence

from dre_jax import atomic

PACKAGE = "gcompris-qt-data"
RCC_REL = os.path.join("usr", "share", "gcompris-qt", "rcc")
# Where scripts/setup_env.sh unpacks the package without root (dpkg-deb -x).
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
LOCAL_DIR = os.path.join(_CHECKOUT, "data", "gcompris")
DEFAULT_OUT = os.path.join(_CHECKOUT, "data", "train_photos", "gcompris")
APT_COMMAND = f"apt-get update && apt-get install -y {PACKAGE}"

# The activities whose raster images are all photographs (the others hold
# drawings, paintings, maps and sounds).
ACTIVITIES = ("categorization", "erase", "explore_farm_animals",
              "explore_monuments", "explore_world_animals")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")

# Qt's rcc format (qtbase src/corelib/io/qresource.cpp): node flags.
_COMPRESSED_ZLIB = 0x01
_DIRECTORY = 0x02
_COMPRESSED_ZSTD = 0x04


class RccError(ValueError):
  """A file that is not a Qt resource file this reader understands."""


def read_rcc(path: str) -> Iterator[tuple[str, bytes]]:
  """The files of a Qt resource file: (path inside it, bytes), depth first.

  Header: b"qres", then big-endian u32 version, tree, data and names offsets
  (version 3 adds a u32 of compression flags). Tree nodes are 14 bytes (22
  from version 2: a u64 modification time follows): u32 name offset, u16
  flags, then for a directory u32 child count and u32 first child index, for a
  file u16 territory, u16 language and u32 data offset. A name is u16 length,
  u32 hash and UTF-16-BE characters; a file's data is u32 size and its bytes
  (qCompress: u32 uncompressed size and a zlib stream)."""
  with open(path, "rb") as f:
    blob = f.read()
  if len(blob) < 20 or blob[:4] != b"qres":
    raise RccError(f"{path} is not a Qt resource file (no 'qres' header): "
                   f"reinstall {PACKAGE} or rerun scripts/setup_env.sh "
                   "--train-photos")
  version, tree, data, names = struct.unpack_from(">IIII", blob, 4)
  if not 1 <= version <= 3:
    raise RccError(f"{path}: Qt resource format version {version}, this "
                   "reader knows versions 1 to 3")
  node_size = 14 if version == 1 else 22

  def unpack(fmt: str, offset: int) -> tuple[int, ...]:
    try:
      return struct.unpack_from(fmt, blob, offset)
    except struct.error:
      raise RccError(f"{path} is truncated or damaged (an offset points past "
                     f"its end): reinstall {PACKAGE}") from None

  def name(offset: int) -> str:
    (length,) = unpack(">H", names + offset)
    raw = blob[names + offset + 6:names + offset + 6 + 2 * length]
    return raw.decode("utf-16-be", errors="replace")

  stack = [(0, "")]  # (node index, its parent's path)
  seen = set()
  while stack:
    index, parent = stack.pop()
    if index in seen:
      raise RccError(f"{path} is damaged (its tree has a cycle)")
    seen.add(index)
    node = tree + index * node_size
    name_offset, flags = unpack(">IH", node)
    here = f"{parent}/{name(name_offset)}" if index else ""
    if flags & _DIRECTORY:
      count, first = unpack(">II", node + 6)
      stack.extend((first + i, here) for i in reversed(range(count)))
      continue
    (offset,) = unpack(">I", node + 10)
    (size,) = unpack(">I", data + offset)
    content = blob[data + offset + 4:data + offset + 4 + size]
    if len(content) != size:
      raise RccError(f"{path} is truncated ({here} runs past its end): "
                     f"reinstall {PACKAGE}")
    if flags & _COMPRESSED_ZSTD:
      raise RccError(f"{path}: {here} is zstd-compressed, which this reader "
                     "does not decode")
    if flags & _COMPRESSED_ZLIB:
      try:
        content = zlib.decompress(content[4:])
      except zlib.error as e:
        raise RccError(f"{path}: {here} does not decompress ({e}): "
                       f"reinstall {PACKAGE}") from None
    yield here, content


def find_rcc_dir(rcc_dir: str | None = None) -> str:
  """The directory of GCompris's .rcc files: `rcc_dir`, else the installed
  package's, else `LOCAL_DIR`'s; FileNotFoundError naming the fix."""
  candidates = ([rcc_dir] if rcc_dir else
                [os.sep + RCC_REL, os.path.join(LOCAL_DIR, RCC_REL)])
  for candidate in candidates:
    if all(os.path.isfile(os.path.join(candidate, a + ".rcc"))
           for a in ACTIVITIES):
      return candidate
  where = " or ".join(candidates)
  raise FileNotFoundError(
      f"no GCompris resource files ({', '.join(a + '.rcc' for a in ACTIVITIES)})"
      f" in {where}: run `bash scripts/setup_env.sh --train-photos` (unpacks "
      f"{PACKAGE} into {LOCAL_DIR} without root) or `{APT_COMMAND}`")


def photos(rcc_dir: str) -> Iterator[tuple[str, str, bytes]]:
  """(activity, path below its resource/ folder, bytes) of every raster image
  of `ACTIVITIES`."""
  for activity in ACTIVITIES:
    for inner, content in read_rcc(os.path.join(rcc_dir, activity + ".rcc")):
      if not inner.lower().endswith(IMAGE_EXTENSIONS):
        continue
      marker = f"/{activity}/resource/"
      rel = (inner.split(marker, 1)[1] if marker in inner
             else os.path.basename(inner))
      yield activity, rel, content


def extract(out: str = DEFAULT_OUT, rcc_dir: str | None = None) -> dict:
  """Writes the photos under `out` (see the module docstring); returns the
  manifest ({"source", "files": [{path, source, bytes, sha256}], "duplicates"})."""
  rcc_dir = find_rcc_dir(rcc_dir)
  files, duplicates, digests = [], [], {}
  for activity, rel, content in photos(rcc_dir):
    digest = hashlib.sha256(content).hexdigest()
    path = os.path.join(activity, *rel.split("/"))
    if digest in digests:
      duplicates.append({"path": path, "same_as": digests[digest]})
      continue
    digests[digest] = path
    target = os.path.join(out, path)
    if not (os.path.isfile(target) and os.path.getsize(target) == len(content)
            and _sha256(target) == digest):
      atomic.write_atomic(target, content)
    files.append({"path": path, "source": f"{activity}.rcc:{rel}",
                  "bytes": len(content), "sha256": digest})
  manifest = {"source": f"Debian's {PACKAGE} ({os.path.realpath(rcc_dir)})",
              "activities": list(ACTIVITIES), "files": files,
              "duplicates": duplicates}
  atomic.write_atomic(os.path.join(out, "manifest.json"),
                      json.dumps(manifest, indent=1) + "\n")
  return manifest


def _sha256(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
  """Writes GCompris's photos into a folder to train DRE on."""
  parser = argparse.ArgumentParser(prog="python -m dre_jax.data.gcompris",
                                   description=main.__doc__)
  parser.add_argument("--out", default=DEFAULT_OUT,
                      help=f"the folder to write (default {DEFAULT_OUT})")
  parser.add_argument("--rcc_dir", default=None,
                      help="GCompris's rcc/ folder (default: the installed "
                      f"package's, else {os.path.join(LOCAL_DIR, RCC_REL)})")
  args = parser.parse_args(argv)
  try:
    manifest = extract(os.path.expanduser(args.out), args.rcc_dir)
  except (OSError, ValueError) as e:
    print(f"{parser.prog}: error: {e}", file=sys.stderr)
    return 2
  print(f"{len(manifest['files'])} photos of {len(ACTIVITIES)} GCompris "
        f"activities in {args.out} ({len(manifest['duplicates'])} duplicates "
        "left out)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
