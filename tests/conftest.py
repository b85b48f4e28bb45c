"""Test-wide setup and the fixtures several test files share.

torchvision (test-only, for parity checks) must be imported before TensorFlow:
the other order crashes the interpreter (triton's libtriton, pulled in by
torch._dynamo, segfaults once TensorFlow's shared libraries are loaded).

Fixtures (one per test run; read them, copy what a test changes):
* `tiny_data`: `tiny_data(name)` -> the data_dir where the tiny TFDS dataset
  `name` (`data_util.TINY`) is prepared.
* `trained_workdir`: (config path, workdir) of `train.py`'s tiny run (tiny_cnn
  on tiny_shapes, every stage, one device), trained once per test run: under
  pytest-xdist the first worker that needs it trains it and the others wait
  on a file lock in the run's shared temporary directory, then read it.
* `released_dre`: (path, modules): the authors' released generator layout with
  random values (`released_util`).
"""

import collections
import json
import os
import shutil
import sys
import tempfile

try:
  import torchvision  # noqa: F401
except ImportError:  # the parity tests skip themselves without it
  pass

import filelock  # noqa: E402
import pytest  # noqa: E402

import training_util  # noqa: E402

# Test files over ~40 s of setup + call + teardown in a full run, longest first
# (`pytest -v -n auto --dist loadfile --durations=0 tests` on the 2-core VM;
# each file's seconds summed from the durations). Files not listed follow, the
# ones with most tests first. Only the order of the files depends on this list.
HEAVIEST_FIRST = (
    "test_explainers.py", "test_evaluate.py", "test_evaluation.py",
    "test_workdir.py", "test_train_step.py", "test_folder.py",
    "test_explain.py", "test_multidevice.py", "test_dtype.py",
    "test_generator.py", "test_scoring.py", "test_natural_photos.py",
    "test_parity_torchvision.py", "test_multihost.py", "test_sanity.py",
    "test_resume.py", "test_estimator.py", "test_validation.py",
    "test_convert.py", "test_composites.py", "test_layers.py",
    "test_baselines.py", "test_package.py", "test_registry.py")


# XLA's persistent compilation cache, one per test run: many tests (and the
# train.py / evaluate.py subprocesses they start) compile the same programs of
# the same tiny models, and a program is compiled once per run instead of once
# per process. DRE_JAX_TEST_COMPILATION_CACHE=0 turns it off; a
# JAX_COMPILATION_CACHE_DIR already set is used as it is.
COMPILATION_CACHE = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                     "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def _compilation_cache(config) -> None:
  """The controller makes the directory and puts it in the environment, which
  the xdist workers and every subprocess inherit; removed when the run ends."""
  if os.environ.get("DRE_JAX_TEST_COMPILATION_CACHE", "1") == "0":
    return
  if not hasattr(config, "workerinput") and not os.environ.get(
      "JAX_COMPILATION_CACHE_DIR"):
    directory = tempfile.mkdtemp(prefix="dre_jax_tests_xla_cache_")
    config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
    os.environ["JAX_COMPILATION_CACHE_DIR"] = directory
  for name, value in COMPILATION_CACHE.items():
    os.environ.setdefault(name, value)
  if "jax" in sys.modules and os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    import jax  # pylint: disable=import-outside-toplevel  (imported before the environment was set)
    jax.config.update("jax_compilation_cache_dir",
                      os.environ["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", int(
        os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]))


def pytest_configure(config):
  """xdist's loadfile scheduler sorts files by test count unless told not to;
  keep the order of `pytest_collection_modifyitems` instead. The compilation
  cache (`_compilation_cache`)."""
  if hasattr(config.option, "loadscopereorder"):
    config.option.loadscopereorder = False
  _compilation_cache(config)


def pytest_collection_modifyitems(config, items):  # pylint: disable=unused-argument
  """Longest files first (`HEAVIEST_FIRST`), then by test count; a file's
  tests keep their order."""
  rank = {name: i for i, name in enumerate(HEAVIEST_FIRST)}
  count = collections.Counter(item.path.name for item in items)
  items.sort(key=lambda item: (rank.get(item.path.name, len(rank)),
                               -count[item.path.name], str(item.path)))


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
  shared = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    shared = shared.parent  # the run's directory, above each worker's own
  root = shared / "trained_workdir"
  built = root / "built.json"
  with filelock.FileLock(str(shared / "trained_workdir.lock")):
    if not built.exists():
      shutil.rmtree(root, ignore_errors=True)  # a worker's failed attempt
      root.mkdir()
      config = training_util.write_config(str(root), tiny_data("tiny_shapes"))
      workdir = str(root / "workdir")
      training_util.run_train(config, workdir)
      built.write_text(json.dumps([config, workdir]))
    config, workdir = json.loads(built.read_text())
  return config, workdir


@pytest.fixture(scope="session")
def released_dre(tmp_path_factory):
  pytest.importorskip("torch")
  import released_util  # pylint: disable=import-outside-toplevel
  return released_util.write_released_dre(
      tmp_path_factory.mktemp("dre") / "model-1.ckpt")
