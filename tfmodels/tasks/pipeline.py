"""The whole story on one machine: vocabulary → pretraining → fine-tuning → comparison → export → serving.

Stages (each prints a banner and its wall time):
    1. vocabulary   WordPiece vocab from the pretraining corpus (training texts only)
    2. pretrain     `pretrain.objective` pretraining of a BERT encoder, then the optional
                    in-domain phase                                    → <run>/pretrain/
    3. finetune     classifier on the pretrained encoder               → <run>/finetune/
    4. random_init  the same classifier from random initialization     → <run>/random_init/
                    (and the LSTM of `study.lstm_config`               → <run>/lstm/)
                    With `study.side_by_side`, stages 3 and 4 train at once, each in a
                    process of its own (tasks/side_by_side.py).
    5. evaluate     validation and test metrics, next to a TF-IDF baseline
    6. export       SavedModel with a raw-string signature, then predictions through it, and the
                    out-of-corpus check set through it
With `study.seeds` N > 1, stages 3–4 run per seed into <run>/seed_<seed>/ (stage 2 too, with
`study.pretraining: per_seed`). Results go to
<run>/results.md, <run>/results.json and <run>/validation_curves.png.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np

from tfmodels import data as tfm_data
from tfmodels import export as tfm_export
from tfmodels import paths
from tfmodels.config import ExperimentConfig
from tfmodels import training as tfm_training
from tfmodels.tasks import common, export as export_task, failed_starts, finetune, pretrain, resume_check, side_by_side, study, train

EXAMPLE_TEXTS = [
    "这是一部非常好的电影！",
    "这部电影太差了，不值得一看。",
    "酒店服务很周到，房间干净，下次还来。",
    "质量太差，用了两天就坏了，不推荐。",
    "物流很快，包装完好，很满意。",
]


def _replace(config: ExperimentConfig, **sections) -> ExperimentConfig:
    """A copy of `config` with some fields of some sections replaced: _replace(c, data={...})."""
    changes = {}
    for section, values in sections.items():
        current = getattr(config, section)
        changes[section] = dataclasses.replace(current, **values) if isinstance(values, dict) else values
    return dataclasses.replace(config, **changes)


@failed_starts.removed_on_error()
def run(config: ExperimentConfig) -> dict:
    """Runs every stage into `config.model_dir`; returns the results written to results.json.

    With `study.seeds` N > 1, stages 3 and 4 run once per seed (seed, seed + 1, ...) on the split of
    `seed`, after one shared pretraining (or, with `study.pretraining: per_seed`, each after its own
    pretraining with that seed); results hold each seed, mean ± std and the paired difference
    (tfmodels/tasks/study.py). The export is the first seed's fine-tuned model. With
    `study.reuse_from`, stages whose settings match that run's are copied from it (`reuse_stage`).
    """
    reference = config.study.reuse_from
    if reference and not os.path.isdir(reference):
        raise common.ConfigError(f"study.reuse_from={reference!r} is not a directory; allowed: an earlier "
                                 "pipeline run's directory")
    reference_kind = resume_check.recorded_kind(reference) if reference else None
    if reference_kind not in (None, "pipeline"):
        raise common.ConfigError(f"study.reuse_from={reference!r} holds a {reference_kind} run; allowed: an "
                                 "earlier pipeline run's directory")
    lstm_config(config, config.seed)  # a bad study.lstm_config fails now, not after pretraining
    started = common.start_run(config, kind="pipeline")
    print(f"run directory: {os.path.abspath(started.model_dir)}", flush=True)
    watch = common.Stopwatch()
    results: dict = {"run_dir": os.path.abspath(started.model_dir), "precision": started.precision,
                     "train_examples": config.data.train_examples}

    common.banner("Stage 1/6: WordPiece vocabulary from the pretraining corpus")
    with watch.stage("vocabulary"):
        corpus = common.read_corpus(config)
        vocab_path = common.ensure_vocab(config, started.output_dir, corpus.texts)
        splits = common.load_text_splits(config)
        common.with_train_sample(config, splits)  # a bad data.train_examples fails now, not after pretraining
        results["vocabulary"] = vocabulary_report(vocab_path, config, corpus, splits)
    with_vocab = _replace(config, data={"vocab_path": vocab_path, "split_seed": common.split_seed(config)})

    shared = None
    if config.study.pretraining == "shared":
        shared = run_pretraining(started, watch, with_vocab, corpus.texts, vocab_path, index=0)

    per_seed, predictions, first_tuned = [], [], None
    for index, seed in enumerate(study_seeds(config)):
        seeded = _replace(with_vocab, seed=seed)
        pre = shared or run_pretraining(started, watch, seeded, corpus.texts, vocab_path, index)
        results.setdefault("pretrain", pre)
        tuned_config = _replace(seeded, finetune={"encoder": pre["encoder_dir"]})
        tuned, seed_results, seed_predictions = run_seed(started, watch, tuned_config, index, lstm_config(config, seed))
        if shared is None:
            seed_results["pretrain"] = pre
        first_tuned = first_tuned or tuned
        per_seed.append(seed_results)
        predictions.append(seed_predictions)

    common.banner("Stage 5/6: evaluation on the test split")
    with watch.stage("evaluate"):
        baselines = tfidf_baselines(with_vocab, splits)
        for seed_results, seed_predictions, baseline in zip(per_seed, predictions, baselines):
            seed_predictions["tfidf_logreg"] = baseline.predicted
            for split in study.SPLITS:
                seed_results[split]["tfidf_logreg"] = baseline.metrics[split]
        results["finetune"] = {"tokens_per_second": first_tuned["tokens_per_second"]}
        results["seeds"] = per_seed
        results.update(study.aggregate(per_seed))
        results["review_level"] = study.review_level([review_correctness(p, splits) for p in predictions])
        results["curves_png"] = study.plot_curves(per_seed, started.path(study.CURVES_FILE))

    common.banner("Stage 6/6: export as a SavedModel and predict through it")
    with watch.stage("export"):
        export_config = _replace(common.load_run_config(first_tuned["output_dir"]),
                                 export={"export_base": started.path("export"),
                                         "model_name": config.export.model_name})
        version_dir = export_task.run(export_config)
        servable = tfm_export.load_servable(version_dir)
        results["export"] = version_dir
        results["predictions"] = tfm_export.predict_texts(servable, EXAMPLE_TEXTS)
        results["out_of_corpus_check"] = out_of_corpus_check(config, servable, baselines[0].model, splits)

    results["stage_seconds"] = {k: round(v, 1) for k, v in watch.seconds.items()}
    results["total_seconds"] = round(watch.total(), 1)
    write_results(started, results)
    return results


def study_seeds(config: ExperimentConfig) -> list[int]:
    """The fine-tuning seeds of the study: seed, seed + 1, ..., `study.seeds` of them."""
    return [config.seed + i for i in range(config.study.seeds)]


def seed_dir(started: common.Run, config: ExperimentConfig, stage: str) -> str:
    """`<run>/<stage>` for a one-seed run, `<run>/seed_<seed>/<stage>` in a study of several seeds."""
    if config.study.seeds == 1:
        return started.stage_dir(stage)
    return started.stage_dir(os.path.join(f"seed_{config.seed}", stage))


def run_pretraining(started: common.Run, watch, config: ExperimentConfig, texts, vocab_path: str,
                    index: int) -> dict:
    """Stage 2 into `<run>/pretrain` (shared by every seed) or `<run>/seed_<seed>/pretrain` (one
    pretraining per seed, seeded with it); returns its report with the encoder's directory."""
    per_seed = config.study.pretraining == "per_seed"
    of = _seed_label(config, index) if per_seed else ""
    common.banner(f"Stage 2/6: {config.pretrain.objective} pretraining of the BERT encoder{of}")
    with watch.stage("pretrain"):
        stage_dir = seed_dir(started, config, "pretrain") if per_seed else started.stage_dir("pretrain")
        reuse_stage(started, config, stage_dir, "pretrain")
        pre = pretrain.pretrain_encoder(common.start_run(config, stage_dir, kind="pretrain"), texts, vocab_path)
    return {"objective": config.pretrain.objective, "seed": config.seed, "encoder_dir": pre["encoder_dir"],
            "heldout": pre["metrics"], "tokens_per_second": pre["tokens_per_second"],
            "steps": config.pretrain.steps, "in_domain_steps": config.pretrain.in_domain_steps}


def _seed_label(config: ExperimentConfig, index: int) -> str:
    """A stage banner's suffix: ' (seed 43, 2 of 3)' in a study of several seeds, '' otherwise."""
    return f" (seed {config.seed}, {index + 1} of {config.study.seeds})" if config.study.seeds > 1 else ""


def run_seed(started: common.Run, watch, config: ExperimentConfig, index: int, lstm: ExperimentConfig | None):
    """Stages 3 and 4 (and the LSTM row) for one seed, one after the other or, with
    `study.side_by_side` where `side_by_side_refusal` finds nothing against it, in processes of their
    own at once; returns the fine-tuning result, the per-seed results and each row's predictions
    ({row: {split: predicted class ids}})."""
    run_rows = run_one_after_another
    if config.study.side_by_side:
        refusal = side_by_side_refusal(started)
        if refusal:
            print(f"study.side_by_side: the runs go one after the other, since {refusal}", flush=True)
        else:
            run_rows = run_side_by_side
    results = run_rows(watch, seed_runs(started, config, lstm), _seed_label(config, index))
    seed_results = {"seed": config.seed,
                    **{split: {key: study.summary(r["metrics"][split]) for key, r in results.items()}
                       for split in study.SPLITS},
                    "curves": {key: study.validation_curve(r.get("evaluations")) for key, r in results.items()}}
    predictions = {key: common.read_predictions(r["output_dir"]) for key, r in results.items()}
    return results["pretrained_finetuned"], seed_results, predictions


@dataclasses.dataclass(frozen=True)
class SeedRun:
    """One row's training run of a seed: its results key, stage name and banner, and the run itself,
    `config` of `kind` ("finetune" or "train", `resume_check.KINDS`) in `model_dir`."""

    key: str
    stage: str
    title: str
    config: ExperimentConfig
    kind: str
    model_dir: str

    @property
    def function(self):
        return finetune.run if self.kind == "finetune" else train.run

    @property
    def args(self) -> tuple:
        """`function`'s arguments: a train run's directory is its config's `model_dir`."""
        return (self.config, self.model_dir) if self.kind == "finetune" else (self.config,)

    def finished(self) -> bool:
        """Whether `model_dir` holds this run finished (its metrics written, trained with every
        setting it reads, step totals included), so running it only reloads and evaluates: a stage
        `study.reuse_from` copied in, or one a re-run of the study finds done."""
        return (paths.exists(os.path.join(self.model_dir, common.METRICS_FILE))
                and resume_check.holds_run(self.model_dir)
                and not resume_check.run_differences(self.config, self.model_dir, self.kind, totals_may_differ=False))


def seed_runs(started: common.Run, config: ExperimentConfig, lstm: ExperimentConfig | None) -> list[SeedRun]:
    """The seed's runs: (a) fine-tuning, (b) random init and the LSTM row, each with its stage
    directory; (b) and the LSTM first copied from `study.reuse_from` where it matches."""
    scratch = random_init_config(config, seed_dir(started, config, "random_init"))
    reuse_stage(started, scratch, scratch.model_dir, "train")
    runs = [SeedRun("pretrained_finetuned", "finetune", "Stage 3/6: fine-tuning the pretrained encoder for sentiment",
                    config, "finetune", seed_dir(started, config, "finetune")),
            SeedRun("random_init", "random_init", "Stage 4/6: the same classifier from random initialization, "
                    "same budget", scratch, "train", scratch.model_dir)]
    if lstm is not None:
        lstm = _replace(lstm, model_dir=seed_dir(started, config, "lstm"))
        reuse_stage(started, lstm, lstm.model_dir, "train")
        runs.append(SeedRun("lstm", "lstm", "Stage 4/6: the LSTM classifier, same split", lstm, "train", lstm.model_dir))
    return runs


def run_one_after_another(watch, runs: list[SeedRun], of: str) -> dict:
    results = {}
    for run in runs:
        common.banner(run.title + of)
        with watch.stage(run.stage):
            results[run.key] = run.function(*run.args)
    return results


def run_side_by_side(watch, runs: list[SeedRun], of: str) -> dict:
    """The runs that still train in processes of their own at once, the CPU cores shared out
    between them alone; each one's stage time is from their common start to its report, so the
    stage times overlap. Finished runs (`SeedRun.finished`) only reload and evaluate, in this
    process, first; a single run left to train trains here with every core."""
    finished, training = [], []
    for run in runs:
        (finished if run.finished() else training).append(run)
    for run in finished:
        print(f"[{run.stage}] finished already in {run.model_dir}: reloaded and evaluated here, "
              "not trained side by side", flush=True)
    results = run_one_after_another(watch, finished, of)
    if len(training) > 1:
        results.update(_train_side_by_side(watch, training, of))
    else:
        results.update(run_one_after_another(watch, training, of))
    return {run.key: results[run.key] for run in runs}


def _train_side_by_side(watch, runs: list[SeedRun], of: str) -> dict:
    threads = side_by_side.threads_per_run(len(runs))
    names = " and ".join(run.stage for run in runs)
    common.banner(f"Stages 3-4/6: {names} side by side, {len(runs)} processes of {threads} thread(s){of}")
    for run in runs:
        print(f"[{run.stage}] {run.title.partition(': ')[2]}", flush=True)
    reports = side_by_side.run_side_by_side(
        [side_by_side.SideRun(run.stage, run.function, run.args) for run in runs], threads=threads)
    for run, report in zip(runs, reports):
        watch.record(run.stage, report.seconds)
    return {run.key: report.value for run, report in zip(runs, reports)}


def side_by_side_refusal(started: common.Run) -> str | None:
    """Why this run cannot train its rows side by side (None when it can): they would compete for
    one accelerator or one set of replicas, or the CPU has a single core."""
    import tensorflow as tf

    if started.strategy is not None and started.strategy.num_replicas_in_sync > 1:
        return f"the strategy trains {started.strategy.num_replicas_in_sync} replicas"
    if tfm_training.num_workers(started.strategy) > 1:
        return "this is a multi-worker job"
    accelerators = tf.config.list_physical_devices("GPU") + tf.config.list_physical_devices("TPU")
    if accelerators:
        return f"{len(accelerators)} accelerator(s) are visible"
    if side_by_side.available_cores() < 2:
        return "this process has one CPU core"
    return None


def reuse_stage(started: common.Run, config: ExperimentConfig, stage_dir: str, kind: str) -> None:
    """Copies this stage's directory from the run `study.reuse_from` names when this run has none and
    that one was trained with every setting the stage reads (`resume_check.run_differences`); the
    stage then resumes it, finished, instead of training. A pretraining stage whose in-domain phase
    alone differs gets that run's general phase (`reuse_general_phase`). Prints what was reused, or
    why not."""
    reference = started.config.study.reuse_from
    if not reference or resume_check.holds_checkpoint(stage_dir):  # never replaces a run's checkpoints
        return
    for source in reference_stage_dirs(started, reference, stage_dir):
        if not resume_check.holds_run(source):
            continue
        differences = resume_check.run_differences(config, source, kind, totals_may_differ=False)
        if not differences:
            _copy_stage(source, stage_dir)
            print(f"reused: {source}, trained with the settings this stage reads", flush=True)
            return
        if kind == "pretrain" and reuse_general_phase(config, source, stage_dir):
            print(f"reused the general phase of {source}, whose in-domain phase differs "
                  f"({', '.join(differences)})", flush=True)
            return
        print(f"not reused: {source} ({', '.join(differences)})", flush=True)


def reuse_general_phase(config: ExperimentConfig, source: str, stage_dir: str) -> bool:
    """Copies the general phase of the pretraining stage `source` when only its in-domain phase's
    settings (`pretrain.in_domain_*`) differ from `config`'s, and records `config` as the stage's:
    the stage then resumes the general phase finished and trains the in-domain phase, as the same
    pretraining from scratch would. Returns whether it copied."""
    recorded = resume_check.read_saved_config(os.path.join(source, resume_check.CONFIG_FILE))
    same_in_domain_phase = pretrain.with_in_domain_settings_of(config, recorded)
    if resume_check.run_differences(same_in_domain_phase, source, "pretrain", totals_may_differ=False):
        return False
    _copy_stage(source, stage_dir, leave_out=pretrain.AFTER_GENERAL_PHASE)
    common.save_config(dataclasses.replace(config, model_dir=stage_dir),
                       os.path.join(stage_dir, resume_check.CONFIG_FILE))
    return True


def _copy_stage(source: str, stage_dir: str, leave_out: tuple[str, ...] = ()) -> None:
    """Replaces `stage_dir` (which holds no checkpoint) by a copy of `source`, without the entries
    `leave_out` names at its top."""
    if os.path.isdir(stage_dir):
        shutil.rmtree(stage_dir)
    shutil.copytree(source, stage_dir, ignore=lambda directory, names: [
        name for name in names if directory == source and name in leave_out])


def reference_stage_dirs(started: common.Run, reference: str, stage_dir: str) -> list[str]:
    """Where the reference run may hold this stage: at the same place, or in the other layout (a
    one-seed run's `<run>/random_init` is a study's `<run>/seed_<seed>/random_init`)."""
    relative = os.path.relpath(stage_dir, started.model_dir)
    first, _, rest = relative.partition(os.sep)
    other = rest if first.startswith("seed_") and rest else os.path.join(f"seed_{started.config.seed}", relative)
    return [os.path.join(reference, relative), os.path.join(reference, other)]


def lstm_config(config: ExperimentConfig, seed: int) -> ExperimentConfig | None:
    """The LSTM row's config (`study.lstm_config`, with its own vocabulary and recipe) on this run's
    split, labelled sample (`data.train_examples`), seed, strategy and `deterministic`, or None."""
    if not config.study.lstm_config:
        return None
    from tfmodels.config import load_config
    lstm = load_config(config.study.lstm_config)
    if lstm.model.kind != "lstm" or lstm.data.train != config.data.train:
        raise common.ConfigError(f"study.lstm_config={config.study.lstm_config!r} must train model.kind=lstm on "
                                 f"data.train={config.data.train!r}")
    data = dataclasses.replace(lstm.data, split_seed=common.split_seed(config), limit=config.data.limit,
                               train_examples=config.data.train_examples)
    return dataclasses.replace(lstm, seed=seed, data=data, strategy=config.strategy,
                               deterministic=config.deterministic)


def random_init_config(config: ExperimentConfig, model_dir: str) -> ExperimentConfig:
    """The fine-tuning config trained from scratch with the same number of epochs in total.

    Layer-wise learning-rate decay is off: it protects pretrained lower layers, and would only slow
    the random lower layers of (b).
    """
    ft, tc = config.finetune, config.trainer
    extra = ft.frozen_epochs if ft.mode == "frozen_then_full" else 0
    epochs = (tc.epochs or 0) + extra if tc.epochs else None
    return _replace(config, model_dir=model_dir, trainer={"epochs": epochs, "layer_decay": 1.0})


def vocabulary_report(vocab_path: str, config: ExperimentConfig, corpus, splits) -> dict:
    tokenizer = tfm_data.make_tokenizer(vocab_path, lowercase=config.data.lowercase)
    unk = tfm_data.unknown_token_rate(splits.validation.texts, tokenizer)
    report = {"size": len(tfm_data.load_vocab(vocab_path)), "corpus_lines": len(corpus.texts),
              "corpus_characters": corpus.num_characters(), "validation_unknown_rate": unk,
              "splits": {k: len(v) for k, v in splits.splits().items()}}
    print(f"vocabulary: {report['size']:,} tokens; unknown-token rate on validation {unk:.4%}; "
          f"splits {report['splits']}", flush=True)
    return report


def fit_tfidf(splits):
    """Character 1–3-gram TF-IDF + logistic regression fitted on the training split (a sklearn Pipeline)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
    return make_pipeline(vectorizer, LogisticRegression(max_iter=2000, C=4.0)).fit(
        splits.train.texts, splits.train.labels)


@dataclasses.dataclass(frozen=True)
class TfidfBaseline:
    """Row (c) of one seed: the fitted model, its predictions ({split: class ids}) and metrics."""

    model: object
    predicted: dict
    metrics: dict


def tfidf_baselines(config: ExperimentConfig, splits) -> list[TfidfBaseline]:
    """Row (c) for each study seed, fitted on the training examples that seed's classifiers train on
    (`common.with_train_sample`: a sample of `data.train_examples` drawn with the seed), so it is fitted
    once when they train on the whole split."""
    fitted, baselines = {}, []
    for seed in study_seeds(config):
        sample = seed if config.data.train_examples else None
        if sample not in fitted:
            model = fit_tfidf(common.with_train_sample(_replace(config, seed=seed), splits))
            predicted = {split: model.predict(getattr(splits, split).texts) for split in study.SPLITS}
            fitted[sample] = TfidfBaseline(model, predicted, tfidf_baseline(predicted, splits))
        baselines.append(fitted[sample])
    return baselines


def tfidf_baseline(predicted: dict, splits) -> dict:
    """The TF-IDF model's {"validation": {...}, "test": {...}} accuracy and macro-F1 from its
    predictions ({split: predicted class ids})."""
    from sklearn.metrics import accuracy_score, f1_score

    result = {}
    for split in study.SPLITS:
        labels = getattr(splits, split).labels
        result[split] = {"accuracy": float(accuracy_score(labels, predicted[split])),
                         "macro_f1": float(f1_score(labels, predicted[split], average="macro"))}
    return result


def review_correctness(predictions: dict, splits) -> dict:
    """{row: {split: bool array}}: whether each row's model classifies each review of the split right."""
    return {row: {split: np.asarray(by_split[split]) == getattr(splits, split).labels for split in study.SPLITS}
            for row, by_split in predictions.items()}


def out_of_corpus_check(config: ExperimentConfig, servable, tfidf, splits) -> dict | None:
    """Accuracy of the export and of TF-IDF on the data source's hand-written check set (diagnosis
    only: never used to choose anything), with each review's prediction; None without a check set."""
    check = tfm_data.out_of_corpus_check(config.data.train)
    if check is None:
        return None
    texts, labels = check
    exported = tfm_export.predict_texts(servable, texts)
    baseline = [splits.label_names[i] for i in tfidf.predict(texts)]
    rows = [{"text": t, "label": y, "exported": p["label"], "confidence": max(p["probabilities"].values()),
             "tfidf": b} for t, y, p, b in zip(texts, labels, exported, baseline)]
    return {"examples": len(rows), "exported_accuracy": sum(r["exported"] == r["label"] for r in rows) / len(rows),
            "tfidf_accuracy": sum(r["tfidf"] == r["label"] for r in rows) / len(rows), "predictions": rows}


def _throughput(tokens_per_second: float | None) -> str:
    if tokens_per_second is None:
        return "not measured (resumed after its last step)"
    return f"{tokens_per_second:,.0f} tokens/s"


def results_markdown(results: dict) -> str:
    lines = [study.table_markdown(results).rstrip("\n"), "",
             f"Validation accuracy over fine-tuning steps: {study.CURVES_FILE}", ""]
    lines += ["| stage | wall time (s) |", "|---|---|"]
    lines += [f"| {stage} | {seconds:.1f} |" for stage, seconds in results["stage_seconds"].items()]
    lines.append(f"| **total** | {results['total_seconds']:.1f} |")
    lines += ["", f"Training throughput: pretraining {_throughput(results['pretrain']['tokens_per_second'])}, "
              f"fine-tuning {_throughput(results['finetune']['tokens_per_second'])} "
              f"(precision {results['precision']}).", "", "Predictions of the exported model:", ""]
    for p in results["predictions"]:
        lines.append(f"- {p['input']} → {p['label']} ({max(p['probabilities'].values()):.3f})")
    check = results.get("out_of_corpus_check")
    if check:
        lines += ["", f"Out-of-corpus check ({check['examples']} hand-written reviews, diagnosis only): "
                      f"exported model {check['exported_accuracy']:.0%}, TF-IDF {check['tfidf_accuracy']:.0%}."]
        lines += [f"- {r['text']} ({r['label']}) → {r['exported']} ({r['confidence']:.2f})"
                  for r in check["predictions"] if r["exported"] != r["label"]]
    return "\n".join(lines) + "\n"


def write_results(started: common.Run, results: dict) -> None:
    text = results_markdown(results)
    with open(started.path("results.md"), "w", encoding="utf-8") as f:
        f.write(text)
    common.write_json(started.path("results.json"), results)
    common.banner("Results")
    print(text)
    print(f"results: {started.path('results.md')}  {started.path('results.json')}")
    print(f"TensorBoard: tensorboard --logdir {os.path.abspath(started.model_dir)}")
    print(f"export: {results['export']}")
