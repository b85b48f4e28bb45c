"""Shared by the training tests: a tiny prepared dataset and a tiny config.

`TinyShapes`: 32x32 images of a coloured square on grey noise, the class is
the colour (4 classes), 48 train / 16 test examples. Once prepared, TFDS reads
it from its files by name (`tfds.builder("tiny_shapes", data_dir=...)`), so
subprocesses running `train.py` need no code from here.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import tensorflow_datasets as tfds

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLOURS = np.array([[230, 40, 40], [40, 200, 40], [40, 40, 230],
                    [230, 230, 40]], np.uint8)


class TinyShapes(tfds.core.GeneratorBasedBuilder):
  """Coloured squares; label = colour."""

  VERSION = tfds.core.Version("1.0.0")
  SIZES = {"train": 48, "test": 16}

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(32, 32, 3)),
            "label": tfds.features.ClassLabel(num_classes=len(COLOURS)),
        }))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(split, n)
            for split, n in self.SIZES.items()}

  def _generate_examples(self, split, n):
    rng = np.random.default_rng(len(split))
    for i in range(n):
      label = i % len(COLOURS)
      image = rng.integers(60, 160, (32, 32, 3), dtype=np.uint8)
      y, x = rng.integers(0, 16, 2)
      image[y:y + 14, x:x + 14] = COLOURS[label]
      yield i, {"image": image, "label": label}


def prepare_tiny_shapes(data_dir: str) -> str:
  TinyShapes(data_dir=data_dir).download_and_prepare()
  return data_dir


CONFIG_TEMPLATE = """
from dre_jax import config as config_lib

def get_config():
  c = config_lib.default_config()
  c.dataset.name = "tiny_shapes"
  c.dataset.data_dir = {data_dir!r}
  c.dataset.image_size = 32
  c.dataset.num_classes = 4
  c.dataset.shuffle_buffer = 64
  c.dataset.num_shards = 2
  c.model.name = "tiny_cnn"
  c.classifier.epochs = 1
  c.classifier.batch_size = 8
  c.classifier.learning_rate = 0.05
  c.embeddings.batch_size = 8
  c.dre.batch_size = 8
  c.dre.epochs = 2
  c.dre.lr_halve_every_epochs = 1
  c.checkpoint_every_steps = 2
  c.log_every_steps = 2
  return c
"""


def write_config(directory: str, data_dir: str) -> str:
  path = os.path.join(directory, "tiny_config.py")
  with open(path, "w") as f:
    f.write(CONFIG_TEMPLATE.format(data_dir=data_dir))
  return path


def train_command(config_path: str, workdir: str, *flags: str) -> list[str]:
  return [sys.executable, os.path.join(REPO, "train.py"),
          f"--config={config_path}", f"--workdir={workdir}", *flags]


def subprocess_env(num_devices: int = 1) -> dict[str, str]:
  env = dict(os.environ)
  env["XLA_FLAGS"] = (f"--xla_force_host_platform_device_count={num_devices}")
  env["JAX_PLATFORMS"] = "cpu"
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  env["CUDA_VISIBLE_DEVICES"] = ""
  return env


def run_train(config_path: str, workdir: str, *flags: str,
              num_devices: int = 1, timeout: float = 600
              ) -> subprocess.CompletedProcess:
  result = subprocess.run(train_command(config_path, workdir, *flags),
                          env=subprocess_env(num_devices), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
  if result.returncode:
    raise AssertionError(f"train.py failed ({result.returncode}):\n"
                         f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
  return result


def load_config_file(path: str, arg: str | None = None):
  """`get_config(arg)` of a config file, as `--config=path[:arg]` loads it."""
  spec = importlib.util.spec_from_file_location(
      os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)
