"""Test-wide setup and the fixtures several test files share.

torchvision (test-only, for parity checks) must be imported before TensorFlow:
the other order crashes the interpreter (triton's libtriton, pulled in by
torch._dynamo, segfaults once TensorFlow's shared libraries are loaded).

Fixtures (one per test run; read them, copy what a test changes):
* `tiny_data`: `tiny_data(name)` -> the data_dir where the tiny TFDS dataset
  `name` (`data_util.TINY`) is prepared.
* `trained_workdir`: (config path, workdir) of `train.py`'s tiny run (tiny_cnn
  on tiny_shapes, every stage, one device).
* `released_dre`: (path, modules): the authors' released generator layout with
  random values (`released_util`).
"""

try:
  import torchvision  # noqa: F401
except ImportError:  # the parity tests skip themselves without it
  pass

import pytest  # noqa: E402

import training_util  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
  import data_util  # pylint: disable=import-outside-toplevel
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  prepared = set()

  def prepare(name: str) -> str:
    if name not in prepared:
      data_util.prepare(name, data_dir)
      prepared.add(name)
    return data_dir

  return prepare


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory, tiny_data):
  root = tmp_path_factory.mktemp("trained")
  config = training_util.write_config(str(root), tiny_data("tiny_shapes"))
  workdir = str(root / "workdir")
  training_util.run_train(config, workdir)
  return config, workdir


@pytest.fixture(scope="session")
def released_dre(tmp_path_factory):
  pytest.importorskip("torch")
  import released_util  # pylint: disable=import-outside-toplevel
  return released_util.write_released_dre(
      tmp_path_factory.mktemp("dre") / "model-1.ckpt")
