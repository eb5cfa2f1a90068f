"""Refuses to resume a run directory under a config that changes what the run computes.

Running the same command again resumes a run from its newest checkpoint, or, when the run is
finished, evaluates and reports its weights again. Its `config.yaml` records what those weights were
trained with. A command whose config differs would mix two settings in one set of weights (a run
part-way through) or report the old weights under the new settings (a finished run), and then
overwrite `config.yaml` with settings the weights never saw. `check_resume` refuses that before
anything is written, naming every key that differs.

Four kinds of key may differ:
- `RUN_MECHANICS`: how a run is carried out, not what it computes: where it runs (strategy,
  determinism), how often it logs and checkpoints, export and study bookkeeping;
- `TOTALS` (`trainer.epochs`, `pretrain.steps`, ...) when the run is resumed in place, if raised:
  the run trains on, as the resume message says. Lowering one is refused, since the weights may
  have trained past it. A run reused as another run's stage must match them;
- `NOT_READ[kind]`: keys that kind of run does not read (a classifier from random init reads no
  `pretrain` section; pretraining reads no `trainer` section and no classifier pooling).
- keys of a feature that both configs turn off (`_READ_WHILE_ON`: `data.crop_min_tokens` when
  `data.crop_rate` is 0, ELECTRA's settings under masked LM, the in-domain phase's settings when
  `pretrain.in_domain_steps` is 0).

`data.vocab_path` is compared by content, not by path: a run keeps the vocabulary it was trained
with (`KEPT_VOCABULARIES`), and a copy of it elsewhere is the same vocabulary. So is
`finetune.encoder`: a fine-tuning run records the fingerprint of the encoder it started from
(`ENCODER_FINGERPRINT_FILE`), so a run directory moved with its encoder (a pipeline run) resumes,
and an encoder changed in place (its pretraining trained on) is a difference. The same comparison
tells the pipeline which stages of an earlier run it can reuse (`study.reuse_from`).
"""

from __future__ import annotations

import os

import yaml

from tfmodels import paths
from tfmodels.config import IN_DOMAIN_SETTINGS, ConfigError, ExperimentConfig, config_from_dict, get_value, to_dict
from tfmodels.data.vocab import load_vocab
from tfmodels.fingerprints import encoder_fingerprint

KIND_FILE = "run_kind.txt"  # which kind of run (`KINDS`) a directory holds
ENCODER_FINGERPRINT_FILE = "encoder_fingerprint.txt"  # what the encoder a fine-tuning run started from computes
PATH_KEYS = ("finetune.encoder", "data.train", "data.validation", "data.test", "data.corpus")
CONFIG_FILE = "config.yaml"
# Where a run keeps the vocabulary it was trained with: a classifier in its directory, pretraining
# with the encoder it saves.
KEPT_VOCABULARIES = ("vocab.txt", os.path.join("encoder", "vocab.txt"))
KINDS = ("train", "finetune", "pretrain", "pipeline")

_CADENCE = ("checkpoint_every_steps", "keep_checkpoints", "log_every_steps", "steps_per_execution", "recompute",
            "length_sorted_parts")
RUN_MECHANICS = frozenset({
    "name", "description", "model_dir", "strategy", "deterministic", "export",
    "study.seeds", "study.lstm_config", "study.reuse_from", "study.side_by_side",
    "data.cache", "data.eval_batch_size",
    *(f"{section}.{key}" for section in ("trainer", "pretrain") for key in _CADENCE),
    "pretrain.in_domain_length_sorted_parts",
})
# A resumed run may raise its totals to train on, not lower them; a run reused elsewhere must have the same totals.
TOTALS = frozenset({"trainer.epochs", "trainer.steps", "pretrain.epochs", "pretrain.steps", "pretrain.in_domain_steps"})

# Read only by pretraining, by the classifier stages, or by the pipeline that runs both.
_PRETRAINING_ONLY = ("pretrain", "data.corpus", "data.pretrain_sequence_length", "data.mask_rate",
                     "data.max_predictions", "data.whole_word_masking", "data.word_segmenter",
                     "model.pretrain_embedding_init")
_CLASSIFIER_ONLY = ("trainer", "finetune", "model.pooling", "data.class_weights", "data.length_buckets",
                    "data.truncation", "data.head_tokens", "data.input_mask_rate",
                    "data.crop_rate", "data.crop_min_tokens", "data.train_examples")
NOT_READ = {
    "train": frozenset({*_PRETRAINING_ONLY, "finetune", "study"}),
    "finetune": frozenset({*_PRETRAINING_ONLY, "study", "data.lowercase"}),  # the encoder's tokenizer decides
    "pretrain": frozenset({*_CLASSIFIER_ONLY, "study"}),
    "pipeline": frozenset(),
}
# Keys read only while a feature is on: (keys, the key that switches it, its value when off).
_READ_WHILE_ON = (
    (("data.crop_min_tokens",), "data.crop_rate", 0.0),
    (("pretrain.generator_width", "pretrain.electra_weight"), "pretrain.objective", "mlm"),
    (tuple(f"pretrain.{name}" for name in IN_DOMAIN_SETTINGS if name != "in_domain_steps"),
     "pretrain.in_domain_steps", 0),
)


def check_resume(config: ExperimentConfig, model_dir: str, kind: str) -> None:
    """Raises ConfigError when `model_dir` holds a run whose config differs from `config` in a key
    that `kind` of run reads (see the module docstring); returns quietly for a new directory.

    Args:
        config: ExperimentConfig. The config about to run.
        model_dir: str. The run directory.
        kind: str. One of `KINDS`: which keys the run reads.
    """
    if not holds_run(model_dir):
        return
    recorded = recorded_kind(model_dir)
    if recorded is not None and recorded != kind:
        raise ConfigError(f"{model_dir}: holds a {recorded} run, and this command starts a {kind} run; use a "
                          f"new --model_dir, or delete {model_dir} to start over")
    differences = run_differences(config, model_dir, kind)
    if differences:
        shown = ", ".join(differences[:6]) + (f" and {len(differences) - 6} more" if len(differences) > 6 else "")
        raise ConfigError(
            f"{model_dir}: holds a run trained with a different config ({shown}); resuming would mix the "
            f"two settings or report that run under the new ones: use a new --model_dir, or delete "
            f"{model_dir} to start over")


def run_differences(config: ExperimentConfig, model_dir: str, kind: str, totals_may_differ: bool = True) -> list[str]:
    """What `config` changes, among the keys `kind` reads, against the run `model_dir` holds
    (`holds_run` must be true).

    Args:
        totals_may_differ: bool. True to resume the run in place (raised totals train on); False to
            reuse it as another run's stage, which must have trained exactly as long.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is invalid; allowed: {', '.join(KINDS)}")
    saved = read_saved_config(os.path.join(model_dir, CONFIG_FILE))
    differences = vocabulary_difference(config, model_dir)
    encoder = recorded_encoder(model_dir)
    if encoder is None:  # compared by path, as `config_differences` does
        return config_differences(saved, config, kind, totals_may_differ) + differences
    return (config_differences(saved, config, kind, totals_may_differ, {"finetune.encoder"})
            + differences + encoder_difference(config, encoder))


def record_kind(output_dir: str, kind: str) -> None:
    """Writes which kind of run `output_dir` holds (`check_resume` compares it)."""
    with paths.open_file(os.path.join(output_dir, KIND_FILE), "w") as f:
        f.write(kind + "\n")


def recorded_kind(model_dir: str) -> str | None:
    """The kind of run `model_dir` holds; None for a run written before kinds were recorded."""
    path = os.path.join(model_dir, KIND_FILE)
    if not paths.exists(path):
        return None
    with paths.open_file(path) as f:
        return f.read().strip()


def record_encoder(output_dir: str, config: ExperimentConfig) -> None:
    """Writes the fingerprint of the local encoder `finetune.encoder` names (`encoder_difference`
    compares it); nothing for a run that names none, or a preset name."""
    fingerprint = _local_encoder_fingerprint(config)
    if fingerprint is not None:
        with paths.open_file(os.path.join(output_dir, ENCODER_FINGERPRINT_FILE), "w") as f:
            f.write(fingerprint + "\n")


def recorded_encoder(model_dir: str) -> str | None:
    """The fingerprint of the encoder the run in `model_dir` started from; None for a run that
    recorded none (no local encoder, or written before fingerprints were recorded)."""
    path = os.path.join(model_dir, ENCODER_FINGERPRINT_FILE)
    if not paths.exists(path):
        return None
    with paths.open_file(path) as f:
        return f.read().strip()


def encoder_difference(config: ExperimentConfig, recorded: str) -> list[str]:
    """['finetune.encoder ...'] when `finetune.encoder` names an encoder that computes something other
    than the one a run recorded starting from (`recorded`, its `recorded_encoder`; compared by
    `encoder_fingerprint`, so a copy or a move of the same encoder is no difference)."""
    if _local_encoder_fingerprint(config) == recorded:
        return []
    return [f"finetune.encoder {config.finetune.encoder!r} is not the encoder the run started from (its "
            "weights, config or vocabulary differ)"]


def _local_encoder_fingerprint(config: ExperimentConfig) -> str | None:
    encoder = config.finetune.encoder
    if not encoder or not _is_local_path(encoder) or not os.path.exists(encoder):
        return None
    return encoder_fingerprint(encoder)


def holds_run(model_dir: str) -> bool:
    """Whether `model_dir` holds a run to resume: its config.yaml and a checkpoint."""
    return paths.exists(os.path.join(model_dir, CONFIG_FILE)) and holds_checkpoint(model_dir)


def holds_checkpoint(model_dir: str) -> bool:
    """Whether `model_dir` or a directory under it (a phase, a pipeline stage) holds a checkpoint."""
    return any("checkpoint" in files for _, _, files in paths.walk(model_dir))


def read_saved_config(path: str) -> ExperimentConfig:
    """The config a run directory recorded, with today's defaults for keys it predates."""
    try:
        with paths.open_file(path) as f:
            data = yaml.safe_load(f)
        return config_from_dict(data or {}, source=path)
    except (yaml.YAMLError, ConfigError) as error:
        reason = str(error).strip().splitlines()[0]
        raise ConfigError(f"{path}: cannot read the config this run was trained with ({reason}); "
                          "use a new --model_dir") from error


def config_differences(saved: ExperimentConfig, new: ExperimentConfig, kind: str,
                       totals_may_differ: bool = True, compared_by_content=frozenset()) -> list[str]:
    """'key saved → new' for every key `kind` reads that differs, except `data.vocab_path` and the
    keys in `compared_by_content`, which the caller compares by what they point to."""
    ignored = (RUN_MECHANICS | NOT_READ[kind] | _fallbacks_not_read(saved, new, kind)
               | _switched_off_in_both(saved, new) | {"data.vocab_path"} | frozenset(compared_by_content))
    old_values, new_values = _comparable(to_dict(saved)), _comparable(to_dict(new))
    return [f"{key} {old_values.get(key)!r} → {new_values.get(key)!r}"
            for key in sorted(old_values.keys() | new_values.keys())
            if not _is_ignored(key, ignored) and old_values.get(key) != new_values.get(key)
            and not (totals_may_differ and key in TOTALS and _raised(old_values.get(key), new_values.get(key)))]


def _raised(old, new) -> bool:
    """Whether a total was raised: the resumed run trains on. A lowered total would report weights
    trained longer than the config that claims them; one set or unset can shorten the run too (with
    both epochs and steps set, a run ends at the first)."""
    return old is not None and new is not None and new >= old


def _fallbacks_not_read(saved: ExperimentConfig, new: ExperimentConfig, kind: str) -> frozenset:
    """Shared keys a run reads only as a fallback, when both configs set the run's own key instead:
    `data.batch_size` behind `trainer.batch_size` / `pretrain.batch_size`, and `model.dropout`
    behind `pretrain.dropout` (pretraining)."""
    section = "pretrain" if kind == "pretrain" else "trainer"
    keys = set()
    if kind != "pipeline" and _set_in_both(saved, new, f"{section}.batch_size"):
        keys.add("data.batch_size")
    if kind == "pretrain" and _set_in_both(saved, new, "pretrain.dropout"):
        keys.add("model.dropout")
    return frozenset(keys)


def _switched_off_in_both(saved: ExperimentConfig, new: ExperimentConfig) -> frozenset:
    """Keys of a feature both configs turn off (`_READ_WHILE_ON`): `data.crop_min_tokens` without
    cropping, ELECTRA's settings under masked LM, the in-domain phase's without its steps."""
    return frozenset(key for keys, switch, off in _READ_WHILE_ON
                     if get_value(saved, switch) == off and get_value(new, switch) == off for key in keys)


def _set_in_both(saved: ExperimentConfig, new: ExperimentConfig, key: str) -> bool:
    return get_value(saved, key) is not None and get_value(new, key) is not None


def vocabulary_difference(config: ExperimentConfig, model_dir: str) -> list[str]:
    """['data.vocab_path ...'] when `data.vocab_path` names a vocabulary other than the run's own.

    Tokens are compared as `load_vocab` reads them: the run keeps its vocabulary re-written
    (`common.ensure_vocab`), so line endings or a byte-order mark may differ from the file given.
    """
    kept = next((path for path in (os.path.join(model_dir, name) for name in KEPT_VOCABULARIES)
                 if paths.exists(path)), None)
    given = config.data.vocab_path
    if not given or not kept or os.path.abspath(given) == os.path.abspath(kept):
        return []
    if paths.exists(given) and load_vocab(given) == load_vocab(kept):
        return []
    return [f"data.vocab_path {given!r} is not the vocabulary the run kept ({kept})"]


def _comparable(config: dict) -> dict:
    """The config's keys under dotted names, with local paths made absolute (`runs/x` and
    `/home/me/runs/x` name the same encoder or file)."""
    flat = _flatten(config)
    for key in PATH_KEYS:
        value = flat.get(key)
        flat[key] = [_absolute(v) for v in value] if isinstance(value, list) else _absolute(value)
    return flat


def _absolute(value):
    """A local path made absolute; None, `builtin:...`, `tfds:...` and URLs (`gs://...`) as they are."""
    return os.path.realpath(value) if _is_local_path(value) else value


def _is_local_path(value) -> bool:
    """Whether a path setting names a local file or directory: not None, `builtin:...`, `tfds:...`
    or a URL (`gs://...`)."""
    return isinstance(value, str) and ":" not in value


def _flatten(data: dict, prefix: str = "") -> dict:
    """{'trainer.learning_rate': 0.001, ...}: a section's keys under their dotted names."""
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _is_ignored(key: str, ignored: frozenset) -> bool:
    """Whether `key` or a section it belongs to is ignored."""
    parts = key.split(".")
    return any(".".join(parts[:i]) in ignored for i in range(1, len(parts) + 1))
