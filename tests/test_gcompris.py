"""GCompris's photos as a training folder: the Qt resource reader and the extraction.

The resource files are written here from Qt's format description (header,
tree of 14- or 22-byte nodes, UTF-16 names, size-prefixed and optionally
qCompress-ed data), so the reader is checked against files whose every byte
the test chose.
"""

import io
import json
import os
import struct
import zlib

import numpy as np
from PIL import Image
import pytest

from dre_jax.data import folder
from dre_jax.data import gcompris


def _rcc(files: dict[str, tuple[bytes, int]], version: int = 3) -> bytes:
  """A Qt resource file holding `files` ({"dir/name": (bytes, flags)}; flags
  1 stores the bytes qCompress-ed, 4 marks them zstd)."""
  tree: dict = {}
  for path, entry in files.items():
    node = tree
    *dirs, leaf = path.split("/")
    for d in dirs:
      node = node.setdefault(d, {})
    node[leaf] = entry
  names, name_offsets, data = bytearray(), {}, bytearray()

  def name(n: str) -> int:
    if n not in name_offsets:
      name_offsets[n] = len(names)
      names.extend(struct.pack(">HI", len(n), 0) + n.encode("utf-16-be"))
    return name_offsets[n]

  nodes: list[bytes] = [b""]
  queue = [(0, "", tree)]
  while queue:
    index, label, children = queue.pop(0)
    first = len(nodes)
    nodes.extend([b""] * len(children))
    nodes[index] = struct.pack(">IHII", name(label), 2, len(children), first)
    for i, (child, entry) in enumerate(children.items()):
      if isinstance(entry, dict):
        queue.append((first + i, child, entry))
        continue
      content, flags = entry
      stored = (struct.pack(">I", len(content)) + zlib.compress(content)
                if flags & 1 else content)
      nodes[first + i] = struct.pack(">IHHHI", name(child), flags, 0, 0,
                                     len(data))
      data.extend(struct.pack(">I", len(stored)) + stored)
  extra = b"\0" * 8 if version >= 2 else b""
  tree_bytes = b"".join(n + extra for n in nodes)
  header_size = 24 if version >= 3 else 20
  data_at = header_size
  names_at = data_at + len(data)
  tree_at = names_at + len(names)
  header = b"qres" + struct.pack(">IIII", version, tree_at, data_at, names_at)
  if version >= 3:
    header += struct.pack(">I", 1)
  return header + bytes(data) + bytes(names) + tree_bytes


def _image(seed: int, fmt: str = "PNG", size=(40, 30)) -> bytes:
  pixels = np.random.default_rng(seed).integers(0, 256, (*size[::-1], 3))
  buf = io.BytesIO()
  Image.fromarray(pixels.astype(np.uint8)).save(buf, format=fmt)
  return buf.getvalue()


@pytest.mark.parametrize("version", [1, 2, 3])
def test_read_rcc_returns_each_file_plain_or_decompressed(tmp_path, version):
  files = {
      "gcompris/src/a/resource/x.png": (_image(0), 0),
      "gcompris/src/a/resource/deep/y.webp": (_image(1, "WEBP"), 1),
      "gcompris/src/a/Activity.qml": (b"import QtQuick 2.12\n" * 50, 1),
      "top.txt": (b"", 0),
  }
  path = tmp_path / "a.rcc"
  path.write_bytes(_rcc(files, version))
  got = dict(gcompris.read_rcc(str(path)))
  assert got == {"/" + k: v[0] for k, v in files.items()}


def test_read_rcc_errors_name_the_problem(tmp_path):
  bad = tmp_path / "bad.rcc"
  bad.write_bytes(b"PK\x03\x04 not a resource file at all")
  with pytest.raises(gcompris.RccError, match="not a Qt resource file"):
    list(gcompris.read_rcc(str(bad)))
  whole = _rcc({"r/x.png": (_image(2), 0)})
  cut = tmp_path / "cut.rcc"
  cut.write_bytes(whole[:len(whole) - 30])
  with pytest.raises(gcompris.RccError, match="truncated or damaged"):
    list(gcompris.read_rcc(str(cut)))
  zstd = tmp_path / "zstd.rcc"
  zstd.write_bytes(_rcc({"r/x.png": (b"\x28\xb5\x2f\xfd....", 4)}))
  with pytest.raises(gcompris.RccError, match="zstd"):
    list(gcompris.read_rcc(str(zstd)))
  future = tmp_path / "v9.rcc"
  future.write_bytes(b"qres" + struct.pack(">IIII", 9, 0, 0, 0))
  with pytest.raises(gcompris.RccError, match="version 9"):
    list(gcompris.read_rcc(str(future)))


def _package(rcc_dir, duplicate: bytes) -> dict[str, bytes]:
  """A fake rcc/ folder: each activity has two photos, a drawing and a QML
  file; `duplicate` lies in two activities. Returns the photos expected."""
  expected = {}
  os.makedirs(rcc_dir)
  for i, activity in enumerate(gcompris.ACTIVITIES):
    prefix = f"gcompris/src/activities/{activity}"
    photo, jpeg = _image(10 + i), _image(20 + i, "JPEG")
    files = {
        f"{prefix}/resource/images/tools/p{i}.png": (photo, 1),
        f"{prefix}/resource/j{i}.JPG": (jpeg, 0),
        f"{prefix}/resource/drawing.svg": (b"<svg/>", 1),
        f"{prefix}/Activity.qml": (b"Item {}", 1),
    }
    expected[f"{activity}/images/tools/p{i}.png"] = photo
    expected[f"{activity}/j{i}.JPG"] = jpeg
    if i < 2:
      files[f"{prefix}/resource/same.webp"] = (duplicate, 0)
    with open(os.path.join(rcc_dir, activity + ".rcc"), "wb") as f:
      f.write(_rcc(files))
  expected[f"{gcompris.ACTIVITIES[0]}/same.webp"] = duplicate
  # An activity outside ACTIVITIES is not read.
  with open(os.path.join(rcc_dir, "lang.rcc"), "wb") as f:
    f.write(_rcc({"gcompris/src/activities/lang/resource/cartoon.png":
                  (_image(99), 0)}))
  return expected


def test_extract_writes_the_photos_once_and_a_manifest(tmp_path):
  rcc_dir, out = str(tmp_path / "rcc"), str(tmp_path / "photos")
  expected = _package(rcc_dir, _image(7, "WEBP"))
  manifest = gcompris.extract(out, rcc_dir)

  written = {}
  for root, _, names in os.walk(out):
    for n in names:
      if n != "manifest.json":
        path = os.path.join(root, n)
        with open(path, "rb") as f:
          written[os.path.relpath(path, out)] = f.read()
  assert written == expected
  assert {f["path"] for f in manifest["files"]} == set(expected)
  assert manifest["duplicates"] == [{
      "path": f"{gcompris.ACTIVITIES[1]}/same.webp",
      "same_as": f"{gcompris.ACTIVITIES[0]}/same.webp"}]
  with open(os.path.join(out, "manifest.json")) as f:
    assert json.load(f) == manifest

  # A second run rewrites nothing that is already right, and repairs a damaged file.
  stamp = {p: os.stat(os.path.join(out, p)).st_mtime_ns for p in expected}
  damaged = sorted(expected)[0]
  with open(os.path.join(out, damaged), "wb") as f:
    f.write(b"\0" * len(expected[damaged]))
  gcompris.extract(out, rcc_dir)
  for p in expected:
    with open(os.path.join(out, p), "rb") as f:
      assert f.read() == expected[p]
    if p != damaged:
      assert os.stat(os.path.join(out, p)).st_mtime_ns == stamp[p]

  # The folder dataset reads every photo, and none is a test-only photo.
  images = folder.open_folder(out)
  assert images.info.splits["images"].num_examples == len(expected)
  folder.check_not_test_only(images.files)


def test_missing_package_is_one_line_naming_the_setup(tmp_path, capsys):
  with pytest.raises(FileNotFoundError, match="setup_env.sh --train-photos"):
    gcompris.find_rcc_dir(str(tmp_path))
  assert gcompris.main([f"--rcc_dir={tmp_path}",
                        f"--out={tmp_path / 'out'}"]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1
  assert "gcompris-qt-data" in err and "--train-photos" in err
  assert not (tmp_path / "out").exists()


def test_main_prints_the_count(tmp_path, capsys):
  rcc_dir, out = str(tmp_path / "rcc"), str(tmp_path / "photos")
  expected = _package(rcc_dir, _image(8))
  assert gcompris.main([f"--rcc_dir={rcc_dir}", f"--out={out}"]) == 0
  assert capsys.readouterr().out.startswith(
      f"{len(expected)} photos of {len(gcompris.ACTIVITIES)} GCompris activities")


def test_the_installed_package_gives_its_photos():
  """Where gcompris-qt-data is installed or unpacked: about 250 photos that
  all decode (the reader on Qt's own files)."""
  try:
    rcc_dir = gcompris.find_rcc_dir()
  except FileNotFoundError:
    pytest.skip("gcompris-qt-data is not installed (setup_env.sh --train-photos)")
  found = list(gcompris.photos(rcc_dir))
  assert len(found) >= 240
  for _, rel, content in found:
    with Image.open(io.BytesIO(content)) as im:
      im.load()
      assert min(im.size) >= 100, rel
