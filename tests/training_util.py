"""Shared by the training tests: a tiny config for `train.py` on the tiny
prepared dataset `tiny_shapes` (`data_util.TINY`), and its command line."""

from __future__ import annotations

import os
import subprocess

import util

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
  return util.cli_command("train.py", f"--config={config_path}",
                          f"--workdir={workdir}", *flags)


def run_train(config_path: str, workdir: str, *flags: str,
              num_devices: int = 1, timeout: float = 600, check: bool = True
              ) -> subprocess.CompletedProcess:
  return util.run_cli(train_command(config_path, workdir, *flags),
                      num_devices=num_devices, timeout=timeout, check=check)
