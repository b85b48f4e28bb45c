"""Atomic writes keep the old file until the new one is complete."""

import os

import pytest

from dre_jax.atomic import write_atomic


def test_writes_text_and_bytes_and_replaces(tmp_path):
  path = tmp_path / "sub" / "result.json"
  write_atomic(path, "old")
  write_atomic(path, b"new")
  assert path.read_bytes() == b"new"
  assert os.listdir(path.parent) == ["result.json"]


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
  path = tmp_path / "result.txt"
  write_atomic(path, "old")
  with pytest.raises(TypeError):
    write_atomic(path, 42)  # not str/bytes: the write fails midway
  assert path.read_text() == "old"
  assert os.listdir(tmp_path) == ["result.txt"]


def test_files_get_the_usual_permissions_not_0600(tmp_path):
  path = tmp_path / "result.json"
  old = os.umask(0o022)
  try:
    write_atomic(path, "x")
  finally:
    os.umask(old)
  assert (os.stat(path).st_mode & 0o777) == 0o644
