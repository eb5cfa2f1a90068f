"""A run that fails or is interrupted before it trained leaves nothing behind.

`common.start_run` records each run directory it sets up; when the block of `removed_on_error`
raises, each recorded directory that holds nothing but its run's setup files (config.yaml, the
vocabulary, the labels: what a run writes before its first step) loses the ones it gained, and is
removed if the run created it. A directory holding anything else (a checkpoint, TensorBoard logs, a
pipeline's finished stage) is left whole, and so is what a directory held before. The tasks' `run`
(train, pretrain, finetune, pipeline), where every `start_run` happens, run in this block, called
from Python or from a binary.
"""
import contextlib
import os

# While `removed_on_error` runs: one _Start per recorded run directory, in order.
_starts: list | None = None


class _Start:
    def __init__(self, output_dir: str, setup_files: frozenset):
        self.output_dir, self.setup_files = output_dir, setup_files
        self.existed = os.path.isdir(output_dir)
        self.names_before = set(os.listdir(output_dir)) if self.existed else set()

    def remove_setup_files(self) -> None:
        """Removes the setup files this run added, and the directory it created, unless it trained."""
        if not os.path.isdir(self.output_dir):
            return
        gained = set(os.listdir(self.output_dir)) - self.names_before
        if any(name not in self.setup_files and not name.endswith(".tmp") for name in gained):
            return  # it trained
        for name in gained:
            os.remove(os.path.join(self.output_dir, name))
        if not self.existed and not os.listdir(self.output_dir):
            os.rmdir(self.output_dir)


def record(output_dir: str, setup_files: frozenset) -> None:
    """Records a run directory about to be set up (before it is created), inside `removed_on_error`."""
    if _starts is not None:
        _starts.append(_Start(output_dir, setup_files))


@contextlib.contextmanager
def removed_on_error():
    """Within the block, run directories set up by runs that then fail before training are removed
    (module docstring). A SystemExit with status 0 is no failure."""
    global _starts
    outer, _starts = _starts, []
    try:
        yield
    except BaseException as error:
        if not (isinstance(error, SystemExit) and not error.code):
            for start in reversed(_starts):
                start.remove_setup_files()
        raise
    finally:
        _starts = outer
