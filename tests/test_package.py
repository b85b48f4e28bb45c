"""The installable package: a lean core, the extras' one-line errors, the
console scripts, the configs by name, the Python version check."""

import os
import subprocess
import sys
import textwrap
import tomllib

import pytest

from dre_jax import cli
from dre_jax import extras

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What the core install runs: none of them may import the `train` extra.
CORE_MODULES = (
    "dre_jax", "dre_jax.classifier", "dre_jax.estimator", "dre_jax.metrics",
    "dre_jax.explainers", "dre_jax.models", "dre_jax.models.tiny",
    "dre_jax.models.efficientnet_lite", "dre_jax.app", "dre_jax.io",
    "dre_jax.app.page", "dre_jax.images", "dre_jax.config",
    "dre_jax.evaluation", "dre_jax.evaluation.figures",
    "dre_jax.evaluation.workdir_config", "dre_jax.cli", "dre_jax.cli.explain",
    "dre_jax.cli.convert")
# Each defines absl flags of the same names: one process each.
TRAIN_CLIS = ("dre_jax.cli.train", "dre_jax.cli.evaluate")
# ... and these do not even read checkpoints (orbax).
NO_CHECKPOINT_MODULES = ("dre_jax", "dre_jax.classifier", "dre_jax.metrics",
                         "dre_jax.explainers", "dre_jax.models",
                         "dre_jax.app")


def _python(code, *args, env=None):
  return subprocess.run(
      [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True,
      text=True, timeout=300, cwd=REPO,
      env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})})


def _imported(modules):
  result = _python(f"""
      import importlib, sys
      for name in {list(modules)!r}:
        importlib.import_module(name)
      print(" ".join(sorted({{m.split(".")[0] for m in sys.modules}})))
  """)
  assert result.returncode == 0, result.stderr
  return set(result.stdout.split())


@pytest.mark.parametrize("modules", [CORE_MODULES, *[[m] for m in TRAIN_CLIS]],
                         ids=["core", *TRAIN_CLIS])
def test_core_modules_import_no_training_library(modules):
  loaded = _imported(modules)
  assert "dre_jax" in loaded and "jax" in loaded
  assert not loaded & set(extras.TRAIN_MODULES), loaded & set(extras.TRAIN_MODULES)


def test_inference_modules_import_no_checkpointing():
  assert "orbax" not in _imported(NO_CHECKPOINT_MODULES)


def test_training_modules_do_import_them():
  """The check above can fail: the data pipelines import TensorFlow."""
  assert {"tensorflow", "tensorflow_datasets"} <= _imported(["dre_jax.data"])


# Runs a CLI as if TensorFlow, TFDS, clu and TensorBoard were not installed.
WITHOUT_TRAIN = """
    import sys
    for name in {modules!r}:
      sys.modules[name] = None  # import fails, find_spec says missing
    sys.argv = ["dre-train", *sys.argv[1:]]
    from dre_jax.cli import train
    train.run()
"""


def test_training_without_the_extra_is_one_line(tmp_path):
  result = _python(WITHOUT_TRAIN.format(modules=extras.TRAIN_MODULES),
                   "--config=quickstart:runlocal", f"--workdir={tmp_path}/w")
  assert result.returncode == 2, result.stderr
  assert "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      "dre-train: error: training needs tensorflow, tensorflow_datasets, clu, "
      'tensorboard: pip install "dre_jax[train]"')


def test_require_names_the_extra():
  extras.require("nothing", "os", "json")
  with pytest.raises(ModuleNotFoundError) as e:
    extras.require("the parity tests", "os", "no_such_module_dre", "captum_x")
  assert e.value.name == "no_such_module_dre"
  assert str(e.value) == ("the parity tests needs no_such_module_dre, captum_x: "
                          "pip install captum_x and pip install no_such_module_dre")
  assert extras.install_hint("tensorflow.io") == 'pip install "dre_jax[train]"'
  assert extras.install_hint("numpy") is None


def test_console_scripts_are_the_clis():
  with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
    project = tomllib.load(f)["project"]
  scripts = project["scripts"]
  assert set(scripts) == {"dre-train", "dre-evaluate", "dre-explain", "dre-convert"}
  for name, target in scripts.items():
    module, _, function = target.partition(":")
    assert module == "dre_jax.cli." + name.removeprefix("dre-")
  # The core needs none of the `train` extra's packages.
  core = " ".join(project["dependencies"]).lower()
  for package in ("tensorflow", "clu", "tensorboard"):
    assert package not in core
  assert any(d.startswith("tensorflow>=") and "darwin" in d
             for d in project["optional-dependencies"]["train"])


@pytest.mark.parametrize("script", ["train.py", "evaluate.py", "explain.py"])
def test_wrappers_and_console_scripts_show_the_flags(script):
  """--helpshort lists the CLI's flags under either name (absl files a
  module's flags under that module, not under the program)."""
  name = "dre-" + script[:-3]
  wrapper = subprocess.run(
      [sys.executable, os.path.join(REPO, script), "--helpshort"],
      capture_output=True, text=True, timeout=300, cwd=REPO)
  console = _python(f"""
      import sys
      sys.argv = [{name!r}, "--helpshort"]
      from dre_jax.cli import {script[:-3]} as cli_module
      cli_module.run()
  """)
  flag = "--workdir" if script != "explain.py" else "--released_dre"
  for result in (wrapper, console):  # absl's --helpshort exits with status 1
    assert flag in result.stdout, result.stderr
    assert f"`{name}`" in result.stdout  # the CLI module's docstring


def test_installed_configs_are_the_checkouts():
  assert os.path.samefile(cli.CONFIG_DIR, os.path.join(REPO, "configs"))
  names = cli.config_names()
  assert {"quickstart", "cub_resnet", "composites_scratch"} <= set(names)
  quickstart = os.path.join(cli.CONFIG_DIR, "quickstart.py")
  assert cli.config_path("quickstart") == quickstart
  assert cli.config_path("quickstart.py") == quickstart
  assert cli.config_path("cub_resnet:runlocal") == os.path.join(
      cli.CONFIG_DIR, "cub_resnet.py") + ":runlocal"
  assert cli.config_path("configs/cub_resnet.py") == "configs/cub_resnet.py"
  with pytest.raises(cli.UserError, match="no installed config of that name.*"
                     "one of: .*quickstart"):
    cli.config_path("quickstrat")
  assert cli.with_config_paths(
      ["dre-train", "--config=quickstart", "--config.dre.epochs=1", "--config",
       "cub_vgg", "--", "--config=x"]) == [
           "dre-train", f"--config={quickstart}", "--config.dre.epochs=1",
           "--config", os.path.join(cli.CONFIG_DIR, "cub_vgg.py"), "--",
           "--config=x"]


def test_a_config_by_name_takes_overrides(tmp_path):
  """`--config=NAME` reaches config_flags, which reads the overrides off sys.argv."""
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, "train.py"), "--config=quickstart",
       f"--workdir={tmp_path}/w", "--config.dre.learning_rte=0.1"],
      capture_output=True, text=True, timeout=300, cwd=tmp_path,
      env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 2
  assert "learning_rte" in result.stderr.strip().splitlines()[-1]
  assert not (tmp_path / "w").exists()


def test_old_python_is_one_line():
  result = _python("import sys; sys.version_info = (3, 10, 12); import dre_jax")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      f"dre_jax needs Python 3.11 or newer, this is {sys.version.split()[0]}: "
      "create the environment with python3.11 (or newer) -m venv"]


def test_license_and_citation():
  with open(os.path.join(REPO, "LICENSE")) as f:
    assert "Apache License" in f.readline() + f.readline()
  with open(os.path.join(REPO, "CITATION.cff")) as f:
    citation = f.read()
  assert "Differentiated Explanation of Deep Neural Networks" in citation
  assert "10.1109/TPAMI.2021.3049784" in citation
