"""Two processes on loopback train like one process with the same devices.

Two `train.py` processes, one CPU device each, join through
`jax.distributed` (a local coordinator, gloo collectives) and train all stages
on the tiny dataset; each reads its own data shard (`dataset.num_shards=2`)
and feeds its half of every global batch. The reference is one process with
two simulated devices reading both shards: the same global batches and the
same partitioned program, so the final classifier and generator must agree
to float rounding, and the workdir holds one set of checkpoints.
"""

import concurrent.futures
import os
import socket

import jax
import numpy as np
import pytest

import training_util
import util
from dre_jax.io import workdir as workdir_lib

pytestmark = pytest.mark.slow  # two train.py processes


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _run_process(config, workdir, port, process_id):
  command = training_util.train_command(
      config, workdir, f"--coordinator_address=127.0.0.1:{port}",
      "--num_processes=2", f"--process_id={process_id}")
  return util.run_cli(command, check=False)


def test_two_processes_match_one(tmp_path, tiny_data):
  config = training_util.write_config(str(tmp_path), tiny_data("tiny_shapes"))
  reference, workdir = str(tmp_path / "one"), str(tmp_path / "two")
  port = _free_port()
  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    ref = pool.submit(training_util.run_train, config, reference, num_devices=2)
    procs = [pool.submit(_run_process, config, workdir, port, i)
             for i in range(2)]
    results = [p.result() for p in procs]
    ref.result()
  for i, result in enumerate(results):
    assert result.returncode == 0, (
        f"process {i}:\n{result.stdout[-2000:]}\n{result.stderr[-6000:]}")
  assert "over 2 devices (cpu) in 2 processes" in results[0].stderr

  one = workdir_lib.load_estimator(reference)
  two = workdir_lib.load_estimator(workdir)
  assert one[3] == two[3]
  for part in (1, 2):  # classifier, generator
    assert jax.tree.structure(one[part]) == jax.tree.structure(two[part])
    for a, b in zip(jax.tree.leaves(one[part]), jax.tree.leaves(two[part])):
      np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
  # One set of checkpoints, the same steps as the one-process run.
  for stage in ("classifier", "embeddings", "dre"):
    assert (sorted(os.listdir(os.path.join(workdir, "checkpoints", stage)))
            == sorted(os.listdir(os.path.join(reference, "checkpoints",
                                              stage))))
