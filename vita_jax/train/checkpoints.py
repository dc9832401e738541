"""Training checkpoints with orbax's CheckpointManager: train state, data-iterator state, config.

Layout: {workdir}/checkpoints/{step}/{state, data, config}. `state` is the sharded
{step, params, opt_state} (every process writes its shards), `data` the grain iterator state
(one JSON file per process), `config` the run's config. Saves are periodic, keep the last N,
and asynchronous where the backend allows; orbax writes to a temporary directory and renames
on success, so a partial save is never listed. `restore_latest` falls back to the previous
checkpoint when the newest one cannot be read, and moves the unreadable one to
{workdir}/unreadable_checkpoints/ so that its step is saved again.
"""

import logging
import os
import time

import grain
import orbax.checkpoint as ocp


class _IteratorSnapshot:
    """The data state captured when the save was requested (async saves run later)."""

    def __init__(self, state):
        self.state = state

    def get_state(self):
        return self.state


class NoUsableCheckpoint(RuntimeError):
    pass


def first_line(error, limit=300):
    """The first line of an error message, shortened (TensorStore errors run to dozens of lines)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text if len(text) <= limit else text[:limit] + "..."


class TrainCheckpointer:
    def __init__(self, directory, every, keep, use_async=True):
        options = ocp.CheckpointManagerOptions(save_interval_steps=every, max_to_keep=keep, create=True,
                                               enable_async_checkpointing=use_async)
        self.manager = ocp.CheckpointManager(directory, options=options, item_names=("state", "data", "config"))
        self.directory = directory

    def steps(self):
        return list(self.manager.all_steps())

    def save(self, step, state, data_iterator, config_dict, force=False):
        """Save if `step` is due (or `force`); returns whether a save started."""
        if not (force or self.manager.should_save(step)):
            return False
        return self.manager.save(step, force=force, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=grain.checkpoint.CheckpointSave(_IteratorSnapshot(data_iterator.get_state())),
            config=ocp.args.JsonSave(config_dict),
        ))

    def latest_config(self):
        """The run config saved with the newest checkpoint whose config is readable, or None."""
        for step in sorted(self.steps(), reverse=True):
            try:
                return self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]
            except Exception:  # noqa: BLE001 - an unreadable checkpoint: restore_latest reports it
                continue
        return None

    def restore_latest(self, abstract_state, data_iterator):
        """(state, config dict) of the newest readable checkpoint, the iterator restored in place;
        None when there is no checkpoint. Unreadable checkpoints are skipped with a warning."""
        steps = sorted(self.steps(), reverse=True)
        errors = []
        for step in steps:
            try:
                restored = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state),
                    data=grain.checkpoint.CheckpointRestore(data_iterator),
                    config=ocp.args.JsonRestore(),
                ))
            except Exception as err:  # a corrupt or partial checkpoint: try the previous one
                reason = f"{type(err).__name__}: {first_line(err)}"
                logging.warning("checkpoint %s/%d is unreadable (%s); trying the previous one",
                                self.directory, step, reason)
                errors.append(f"step {step}: {reason}")
                continue
            for bad in steps[:len(errors)]:
                self._set_aside(bad)
            return restored["state"], restored["config"]
        if steps:
            raise NoUsableCheckpoint(f"no readable checkpoint in {self.directory}: " + "; ".join(errors))
        return None

    def _set_aside(self, step):
        """Move an unreadable checkpoint out of the way (kept for inspection) so the step is saved again."""
        import jax
        from jax.experimental import multihost_utils

        aside = os.path.join(os.path.dirname(self.directory), "unreadable_checkpoints", f"{step}-{int(time.time())}")
        if jax.process_index() == 0:
            os.makedirs(os.path.dirname(aside), exist_ok=True)
            os.rename(os.path.join(self.directory, str(step)), aside)
            logging.warning("moved the unreadable checkpoint of step %d to %s (delete it when done)", step, aside)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"set aside checkpoint {step}")
        self.manager.reload()

    def wait(self):
        self.manager.wait_until_finished()

    def close(self):
        self.manager.close()
