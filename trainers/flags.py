"""Flags shared by every tfmodels binary, defined once, and the error-reporting wrapper."""

import sys

from absl import app, flags

from tfmodels import choices

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the common flags (idempotent). All are optional unless a binary marks them."""
    if "config" in FLAGS:
        return
    flags.DEFINE_string("config", None, "Experiment YAML file (see configs/).")
    flags.DEFINE_multi_string("override", [], "section.key=value applied after --config; repeatable.")
    flags.DEFINE_string("model_dir", None, "Run directory: checkpoints, TensorBoard logs, config.yaml.")
    flags.DEFINE_enum("strategy", None, list(choices.STRATEGIES),
                      "tf.distribute strategy; multi_worker reads TF_CONFIG.")
    flags.DEFINE_enum("precision", None, list(choices.PRECISIONS),
                      "Keras precision policy; auto picks bfloat16 where the hardware has it.")
    flags.DEFINE_integer("seed", None, "Random seed for initialization, shuffling and masking.")
    flags.DEFINE_integer("cpu_devices", None, "Split the CPU into N logical devices, a stand-in for N GPUs "
                         "(try --strategy=mirrored on a laptop).", lower_bound=1)
    flags.DEFINE_boolean("verbose", False, "Show full tracebacks for errors.")


def resolve_config(kind: str, **extra):
    """Loads --config with --override and the common flags that were given, for a `kind` of run
    (`resume_check.KINDS`) that writes to its model_dir. The directory is checked here, before the
    run loads TensorFlow: that it can be written, and that a run it holds may resume under this
    config (the task checks that again, for its Python API)."""
    from tfmodels.config import check_model_dir, load_config
    from tfmodels.tasks.resume_check import check_resume
    config = load_config(FLAGS.config, FLAGS.override, model_dir=FLAGS.model_dir, strategy=FLAGS.strategy,
                         precision=FLAGS.precision, seed=FLAGS.seed, **extra)
    check_model_dir(config.model_dir)
    check_resume(config, config.model_dir, kind)
    return config


INTERRUPTED_EXIT_STATUS = 130  # the shell's status for a process ended by SIGINT


def _parse_flags(argv):
    """absl's flag parsing with a bad flag as one `error:` line and exit status 2, as other user errors."""
    try:
        return FLAGS(argv)
    except flags.Error as error:
        print(f"error: {error}; --helpshort lists the flags", file=sys.stderr)
        sys.exit(2)


def run_main(main) -> None:
    """Runs an absl main; user errors become one line on stderr and exit status 2, a preempted
    run (SIGTERM) one `preempted:` line naming its checkpoint and exit status 75, and Ctrl-C
    (SIGINT) one `interrupted:` line and exit status 130."""

    def guarded(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        try:
            if FLAGS.cpu_devices:
                from tfmodels.training import split_cpu_devices
                split_cpu_devices(FLAGS.cpu_devices)
            return main(argv)  # a task's run removes what a failed start wrote (failed_starts)
        except KeyboardInterrupt:
            if FLAGS.verbose:
                raise
            print("interrupted: a training run resumes from its last checkpoint when the same command runs "
                  "again", file=sys.stderr)
            sys.exit(INTERRUPTED_EXIT_STATUS)
        except (ValueError, OSError, KeyError) as e:
            if FLAGS.verbose:
                raise
            message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)
        except Exception as e:
            # Imported here, not before main: tfmodels.training loads TensorFlow (10 s or more), which a
            # bad config must not wait for. Only a training run raises it, so TensorFlow is loaded by then.
            from tfmodels.training import PREEMPTED_EXIT_STATUS, TrainingPreempted
            if not isinstance(e, TrainingPreempted):
                raise
            print(f"preempted: {e}", file=sys.stderr, flush=True)
            sys.exit(PREEMPTED_EXIT_STATUS)

    app.run(guarded, flags_parser=_parse_flags)
