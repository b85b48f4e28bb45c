"""The resumable per-stage checkpoints of training.

    workdir/checkpoints/<stage>/<step>/  orbax CheckpointManager, one per stage:
                                         {"state": the train state; "data":
                                          the data position and metrics}

The rest of the workdir (classifier/, estimator/, config.json, summary.json)
is `dre_jax.io.workdir`'s.

orbax writes each checkpoint into a temporary directory and renames it when
complete, so a run killed at any moment leaves the earlier checkpoints intact
and the next run resumes from the newest complete one. In a multi-process run
every process calls the savers and orbax writes each array once.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class StageCheckpoints:
  """Checkpoints of one stage: save every N steps and at the end, keep the last few."""

  def __init__(self, workdir: str, stage: str, keep: int):
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints",
                                  stage)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, cleanup_tmp_directories=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, data_position: dict[str, int]) -> None:
    """Starts writing `state` (async); a finished write is renamed into place."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave(data_position)), force=True)

  def restore(self, step: int, target: Any) -> tuple[Any, dict[str, int]]:
    """(state like `target`, with its shardings; the data position) at `step`."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract),
          data=ocp.args.JsonRestore()))
    except (ValueError, KeyError) as e:
      raise ValueError(
          f"the checkpoint {self.directory}/{step} does not fit this config "
          f"({e}); it was written by another config: use another --workdir "
          "or the config that wrote it") from e
    return restored["state"], restored["data"]

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
