"""Helpers shared by the tests (the fixtures built on them are in conftest.py;
the tiny TFDS datasets in data_util.py).

* `load_module`, `load_config_file`: a Python file (a config, a script) loaded
  as a module, as `--config=path[:arg]` loads a config.
* `cli_command`, `run_cli`: a CLI in a subprocess on N simulated CPU devices;
  `one_error_line`: its user error, one line.
* `write_workdir`: classifier/ + estimator/ as train.py writes them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------ files


def load_module(path: str, name: str | None = None):
  """The Python file at `path`, executed as a module named `name` (default:
  the file's name)."""
  spec = importlib.util.spec_from_file_location(
      name or os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_config_file(path: str, arg: str | None = None):
  """`get_config(arg)` of a config file, as `--config=path[:arg]` loads it
  (`get_config()` without an arg)."""
  module = load_module(path)
  return module.get_config() if arg is None else module.get_config(arg)


# ------------------------------------------------------------------ CLIs


def subprocess_env(num_devices: int = 1, **extra: str) -> dict[str, str]:
  """This environment on `num_devices` simulated CPU devices, plus `extra`."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={num_devices}"
  env["JAX_PLATFORMS"] = "cpu"
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  env["CUDA_VISIBLE_DEVICES"] = ""
  return {**env, **extra}


def cli_command(script: str, *args: str) -> list[str]:
  """The command line of the repository's `script` (e.g. "train.py")."""
  return [sys.executable, os.path.join(REPO, script), *args]


def run_cli(command: list[str], *, num_devices: int = 1, env: dict | None = None,
            cwd: str = REPO, timeout: float = 600, check: bool = True
            ) -> subprocess.CompletedProcess:
  """`command` in a subprocess on `num_devices` CPU devices, its output
  captured; `env` adds to the environment. With `check`, a failure raises
  with the tail of its output."""
  result = subprocess.run(command, env=subprocess_env(num_devices, **(env or {})),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)
  if check and result.returncode:
    name = os.path.basename(command[1])
    raise AssertionError(f"{name} failed ({result.returncode}):\n"
                         f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
  return result


def one_error_line(result, prog="train.py"):
  """Exit status 2 and one `prog: error: ...` line, no traceback."""
  lines = [l for l in result.stderr.splitlines()
           if l.startswith(f"{prog}: error:")]
  assert result.returncode == 2, result.stderr[-3000:]
  assert len(lines) == 1, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  return lines[0]


# ------------------------------------------------------------------ workdirs


def write_workdir(path, classifier, dre, generator_variables, image_size: int
                  ) -> str:
  """classifier/ + estimator/ in `path`, written as train.py writes them."""
  from dre_jax.io import classifier_dir  # pylint: disable=import-outside-toplevel
  from dre_jax.io import workdir as workdir_lib  # pylint: disable=import-outside-toplevel
  num_classes = classifier.num_classes
  classifier_dir.save_classifier(os.path.join(path, workdir_lib.CLASSIFIER_DIR),
                                 classifier.spec.name, num_classes,
                                 classifier.variables)
  workdir_lib.save_estimator(
      path, workdir_lib.estimator_metadata(dre, num_classes, image_size),
      generator_variables)
  return str(path)


# ------------------------------------------------------------------ setup


def setup_without_root(tmp_path, flag: str):
  """A checkout holding only scripts/setup_env.sh under `tmp_path`, and a
  function that runs `setup_env.sh flag` there with the root check off
  (DRE_SETUP_NO_ROOT=1) and returns the CompletedProcess."""
  checkout = tmp_path / "checkout"
  (checkout / "scripts").mkdir(parents=True)
  shutil.copy(os.path.join(REPO, "scripts", "setup_env.sh"), checkout / "scripts")

  def setup():
    return subprocess.run(
        ["bash", str(checkout / "scripts" / "setup_env.sh"), flag],
        env={**os.environ, "DRE_SETUP_NO_ROOT": "1"}, capture_output=True,
        text=True, timeout=1200, check=False)

  return checkout, setup
