"""The whole story on one machine: vocabulary → pretraining → fine-tuning → comparison → export → serving.

Stages (each prints a banner and its wall time):
    1. vocabulary   WordPiece vocab from the pretraining corpus (training texts only)
    2. pretrain     masked-LM pretraining of a BERT encoder            → <run>/pretrain/
    3. finetune     classifier on the pretrained encoder               → <run>/finetune/
    4. random_init  the same classifier from random initialization     → <run>/random_init/
    5. evaluate     test-split metrics of both and of a TF-IDF baseline
    6. export       SavedModel with a raw-string signature, then predictions through it
Results go to <run>/results.md and <run>/results.json.
"""

from __future__ import annotations

import dataclasses
import os

from tfmodels import data as tfm_data
from tfmodels import export as tfm_export
from tfmodels.config import ExperimentConfig
from tfmodels.tasks import common, export as export_task, finetune, pretrain, train

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


def run(config: ExperimentConfig) -> dict:
    """Runs every stage into `config.model_dir`; returns the results written to results.json."""
    started = common.start_run(config)
    print(f"run directory: {os.path.abspath(started.model_dir)}", flush=True)
    watch = common.Stopwatch()
    results: dict = {"run_dir": os.path.abspath(started.model_dir), "precision": started.precision}

    common.banner("Stage 1/6: WordPiece vocabulary from the pretraining corpus")
    with watch.stage("vocabulary"):
        corpus = common.read_corpus(config)
        vocab_path = common.ensure_vocab(config, started.output_dir, corpus.texts)
        splits = common.load_text_splits(config)
        results["vocabulary"] = vocabulary_report(vocab_path, config, corpus, splits)
    with_vocab = _replace(config, data={"vocab_path": vocab_path})

    common.banner("Stage 2/6: masked-LM pretraining of the BERT encoder")
    with watch.stage("pretrain"):
        pre = pretrain.pretrain_encoder(common.start_run(with_vocab, started.stage_dir("pretrain")), corpus.texts,
                                        vocab_path)
        results["pretrain"] = {"heldout": pre["metrics"], "tokens_per_second": pre["tokens_per_second"],
                               "steps": config.pretrain.steps}

    common.banner("Stage 3/6: fine-tuning the pretrained encoder for sentiment")
    with watch.stage("finetune"):
        tuned = finetune.run(_replace(with_vocab, finetune={"encoder": pre["encoder_dir"]}),
                             started.stage_dir("finetune"))
        results["finetune"] = {"tokens_per_second": tuned["tokens_per_second"]}

    common.banner("Stage 4/6: the same classifier from random initialization, same budget")
    with watch.stage("random_init"):
        scratch = train.run(random_init_config(with_vocab, started.stage_dir("random_init")))

    common.banner("Stage 5/6: evaluation on the test split")
    with watch.stage("evaluate"):
        results["test"] = {
            "pretrained_finetuned": _summary(tuned["metrics"]["test"]),
            "random_init": _summary(scratch["metrics"]["test"]),
            "tfidf_logreg": tfidf_baseline(splits),
        }
        results["validation"] = {"pretrained_finetuned": _summary(tuned["metrics"]["validation"]),
                                 "random_init": _summary(scratch["metrics"]["validation"])}

    common.banner("Stage 6/6: export as a SavedModel and predict through it")
    with watch.stage("export"):
        export_config = _replace(common.load_run_config(tuned["output_dir"]),
                                 export={"export_base": started.path("export"),
                                         "model_name": config.export.model_name})
        version_dir = export_task.run(export_config)
        servable = tfm_export.load_servable(version_dir)
        results["export"] = version_dir
        results["predictions"] = tfm_export.predict_texts(servable, EXAMPLE_TEXTS)

    results["stage_seconds"] = {k: round(v, 1) for k, v in watch.seconds.items()}
    results["total_seconds"] = round(sum(watch.seconds.values()), 1)
    write_results(started, results)
    return results


def random_init_config(config: ExperimentConfig, model_dir: str) -> ExperimentConfig:
    """The fine-tuning config trained from scratch with the same number of epochs in total."""
    ft, tc = config.finetune, config.trainer
    extra = ft.frozen_epochs if ft.mode == "frozen_then_full" else 0
    epochs = (tc.epochs or 0) + extra if tc.epochs else None
    return _replace(config, model_dir=model_dir, trainer={"epochs": epochs})


def vocabulary_report(vocab_path: str, config: ExperimentConfig, corpus, splits) -> dict:
    tokenizer = tfm_data.make_tokenizer(vocab_path, lowercase=config.data.lowercase)
    unk = tfm_data.unknown_token_rate(splits.validation.texts, tokenizer)
    report = {"size": len(tfm_data.load_vocab(vocab_path)), "corpus_lines": len(corpus.texts),
              "corpus_characters": corpus.num_characters(), "validation_unknown_rate": unk,
              "splits": {k: len(v) for k, v in splits.splits().items()}}
    print(f"vocabulary: {report['size']:,} tokens; unknown-token rate on validation {unk:.4%}; "
          f"splits {report['splits']}", flush=True)
    return report


def tfidf_baseline(splits) -> dict:
    """Character 1–3-gram TF-IDF + logistic regression fitted on the training split."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
    features = vectorizer.fit_transform(splits.train.texts)
    classifier = LogisticRegression(max_iter=2000, C=4.0).fit(features, splits.train.labels)
    predicted = classifier.predict(vectorizer.transform(splits.test.texts))
    return {"accuracy": float(accuracy_score(splits.test.labels, predicted)),
            "macro_f1": float(f1_score(splits.test.labels, predicted, average="macro"))}


def _summary(metrics: dict) -> dict:
    return {"accuracy": float(metrics["accuracy"]), "macro_f1": float(metrics["macro_f1"])}


def results_markdown(results: dict) -> str:
    rows = [("(a) pretrained + fine-tuned BERT", "pretrained_finetuned"),
            ("(b) same BERT from random init", "random_init"),
            ("(c) char 1-3-gram TF-IDF + logistic regression", "tfidf_logreg")]
    lines = ["| model | test accuracy | test macro-F1 |", "|---|---|---|"]
    for title, key in rows:
        m = results["test"][key]
        lines.append(f"| {title} | {m['accuracy']:.2%} | {m['macro_f1']:.4f} |")
    lines += ["", "| stage | wall time (s) |", "|---|---|"]
    lines += [f"| {stage} | {seconds:.1f} |" for stage, seconds in results["stage_seconds"].items()]
    lines.append(f"| **total** | {results['total_seconds']:.1f} |")
    lines += ["", f"Training throughput: pretraining {results['pretrain']['tokens_per_second']:,.0f} tokens/s, "
              f"fine-tuning {results['finetune']['tokens_per_second']:,.0f} tokens/s "
              f"(precision {results['precision']}).", "", "Predictions of the exported model:", ""]
    for p in results["predictions"]:
        lines.append(f"- {p['input']} → {p['label']} ({max(p['probabilities'].values()):.3f})")
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
