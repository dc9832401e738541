"""Training checkpoints with orbax's CheckpointManager: train state, data-iterator state, config.

Layout: {workdir}/checkpoints/{step}/{state, data, config}. `state` is the sharded
{step, params, opt_state} (every process writes its shards), `data` the grain iterator state
(one JSON file per process), `config` the run's config. Saves are periodic, keep the last N,
and asynchronous where the backend allows; orbax writes to a temporary directory and renames
on success, so a partial save is never listed. `restore_latest` falls back to the previous
checkpoint when the newest one cannot be read.
"""

import logging

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
                logging.warning("checkpoint %s/%d is unreadable (%s: %s); trying the previous one",
                                self.directory, step, type(err).__name__, err)
                errors.append(f"step {step}: {type(err).__name__}: {err}")
                continue
            return restored["state"], restored["config"]
        if steps:
            raise NoUsableCheckpoint(f"no readable checkpoint in {self.directory}: " + "; ".join(errors))
        return None

    def wait(self):
        self.manager.wait_until_finished()

    def close(self):
        self.manager.close()
