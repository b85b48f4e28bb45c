"""Saved variables are checked against their file list before orbax reads them.

`classifier_dir.save_variables` records the size and SHA-256 of each file of
the checkpoint; `restore_variables` refuses a missing, truncated or altered
file with one ValueError naming it and the repair, and reads checkpoints
written without a file list (older workdirs) through orbax alone.
"""

import hashlib
import json
import os

import numpy as np
import pytest

from dre_jax.io import classifier_dir

REPAIR = "delete it and train again"


@pytest.fixture()
def saved(tmp_path):
  variables = {"params": {"w": np.arange(600, dtype=np.float32).reshape(20, 30),
                          "b": np.ones(7, np.float32)}}
  path = str(tmp_path / "variables")
  classifier_dir.save_variables(path, variables)
  return path, variables


def _files(path):
  return sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs)


def test_the_file_list_matches_the_files_on_disk(saved):
  path, variables = saved
  with open(path + classifier_dir.MANIFEST_SUFFIX) as f:
    manifest = json.load(f)
  assert sorted(os.path.join(path, k) for k in manifest) == _files(path)
  for name, entry in manifest.items():
    with open(os.path.join(path, name), "rb") as f:
      data = f.read()
    assert entry == {"bytes": len(data),
                     "sha256": hashlib.sha256(data).hexdigest()}
  restored = classifier_dir.restore_variables(path, variables, REPAIR)
  np.testing.assert_array_equal(restored["params"]["w"],
                                variables["params"]["w"])


@pytest.mark.parametrize("damage, message", [
    ("truncate", "has [0-9]+ bytes, [0-9]+ were written"),
    ("flip", "differs from what was written: SHA-256 mismatch"),
    ("delete", "is missing"),
])
def test_a_damaged_file_is_named_before_orbax_reads_it(saved, damage, message):
  path, variables = saved
  largest = max(_files(path), key=os.path.getsize)
  if damage == "truncate":
    with open(largest, "r+b") as f:
      f.truncate(os.path.getsize(largest) // 2)
  elif damage == "flip":
    with open(largest, "r+b") as f:
      f.seek(os.path.getsize(largest) // 2)
      byte = f.read(1)
      f.seek(-1, os.SEEK_CUR)
      f.write(bytes([byte[0] ^ 0xFF]))
  else:
    os.remove(largest)
  name = os.path.relpath(largest, path)
  with pytest.raises(ValueError, match=f"{path} is damaged \\({name} {message}"
                     f".*{REPAIR}"):
    classifier_dir.restore_variables(path, variables, REPAIR)


def test_a_damaged_file_list_is_named(saved):
  path, variables = saved
  with open(path + classifier_dir.MANIFEST_SUFFIX, "w") as f:
    f.write('{"a": ')
  with pytest.raises(ValueError, match=f"files.json is damaged.*{REPAIR}"):
    classifier_dir.restore_variables(path, variables, REPAIR)


def test_without_a_file_list_orbax_reads_and_checks_alone(saved):
  path, variables = saved
  os.remove(path + classifier_dir.MANIFEST_SUFFIX)
  restored = classifier_dir.restore_variables(path, variables, REPAIR)
  np.testing.assert_array_equal(restored["params"]["b"],
                                variables["params"]["b"])
  other = {"params": {"w": np.zeros((20, 31), np.float32),
                      "b": np.ones(7, np.float32)}}
  with pytest.raises(ValueError, match=REPAIR):
    classifier_dir.restore_variables(path, other, REPAIR)
