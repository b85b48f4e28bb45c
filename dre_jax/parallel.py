"""Data parallelism over every device of every process: one mesh, `jax.jit`.

Training (`dre_jax.training`) and evaluation (`dre_jax.evaluation`) share it.
The training steps are plain `jax.jit` functions of global arrays: the batch is
split along a one-axis `Mesh` over all devices (`NamedSharding(mesh,
P("data"))`) and the parameters are replicated (`P()`). XLA partitions each
step and inserts the all-reduces, so gradient means and BatchNorm batch
statistics are over the global batch, exactly as on one device with the same
batch (only the order of floating-point sums differs). The same code runs on
one CPU, eight GPUs or a TPU pod.

Multi-host: every process runs the same program. `initialize()` starts
`jax.distributed` when asked to (explicit coordinator flags) or when the
environment describes a cluster (TPU pod, SLURM, Open MPI); each process then
feeds its own share of the global batch (`global_batch`).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from absl import logging
import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
from jax.experimental import multihost_utils

AXIS = "data"

def _cluster_from_env() -> str | None:
  """The kind of multi-process job the environment describes, or None."""
  env = os.environ
  if "," in env.get("TPU_WORKER_HOSTNAMES", ""):
    return "TPU pod"
  if int(env.get("SLURM_NTASKS", "1")) > 1:
    return "SLURM"
  if int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
    return "Open MPI"
  return None


def initialize(coordinator_address: str = "", num_processes: int = 0,
               process_id: int = -1) -> None:
  """Starts `jax.distributed` for a multi-process run; does nothing otherwise.

  Explicit arguments (all three) start it on any machine, e.g. two processes
  on one CPU host with `coordinator_address="127.0.0.1:12345"`; CPU devices
  then use gloo collectives. Without them, a TPU pod, a SLURM job with more
  than one task or an Open MPI job is detected from the environment and
  `jax.distributed.initialize()` reads the job from it.
  """
  explicit = (coordinator_address, num_processes > 0, process_id >= 0)
  if any(explicit) and not all(explicit):
    raise ValueError(
        "pass all of --coordinator_address, --num_processes and --process_id "
        "(or none, to detect a TPU pod or SLURM job from the environment)")
  # Collectives between the CPU devices of different processes (tests, CPU
  # clusters); the accelerators have their own.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if all(explicit):
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes,
                               process_id=process_id)
  else:
    cluster = _cluster_from_env()
    if cluster is None:
      return
    logging.info("%s environment: starting jax.distributed", cluster)
    jax.distributed.initialize()
  logging.info("process %d of %d, %d local and %d global devices",
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())


def make_mesh() -> jax.sharding.Mesh:
  """A one-axis mesh over all devices of all processes, ordered by process."""
  return jax.make_mesh((jax.device_count(),), (AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(AXIS))


def check_batch_size(batch_size: int, what: str) -> None:
  """The global batch must split evenly over processes and devices."""
  n = jax.device_count()
  if batch_size % n:
    raise ValueError(
        f"{what}={batch_size} is not a multiple of the {n} devices "
        f"({jax.process_count()} processes); choose a batch size divisible "
        f"by {n}")


def global_batch(mesh: jax.sharding.Mesh,
                 local: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
  """This process's rows of the batch -> global arrays split over the mesh.

  local: arrays whose first axis is this process's share of the batch;
  processes are concatenated in process order.
  """
  sharding = batch_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local.items()}


def replicate(mesh: jax.sharding.Mesh, tree: Any) -> Any:
  """A pytree of host arrays, identical on every process -> replicated arrays."""
  sharding = replicated(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
      tree)


def to_host(tree: Any) -> Any:
  """Global arrays (e.g. split over the mesh) -> numpy arrays, whole, on every process."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def broadcast_from_process_0(tree: Any) -> Any:
  """Process 0's value of a pytree of numpy arrays/scalars on every process."""
  if jax.process_count() == 1:
    return tree
  return multihost_utils.broadcast_one_to_all(tree)


def barrier(name: str) -> None:
  """Waits until every process reaches this point (no-op with one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)
