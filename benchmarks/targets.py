"""The issue's targets, evaluated on one run's results (ratios within the run)."""
from __future__ import annotations

from benchmarks.common import ratio

TRAINER_VS_KERAS_HUB = 1.0
TRAINER_VS_HF_BF16 = 1.3
MFU_WIDE_BF16 = 0.5
PIPELINE_VS_TRAINING = 5.0
EXPORT_VS_KERAS_PREDICT = 1.0


def find(rows, **keys):
    """The first row whose items match `keys`, or None."""
    for row in rows:
        if all(row.get(key) == value for key, value in keys.items()):
            return row
    return None


def _check(name, measured, target, detail=""):
    status = "n/a" if measured is None else ("PASS" if measured >= target else "MISS")
    return {"target": name, "goal": target, "measured": measured, "status": status,
            "detail": detail}


def evaluate_targets(results):
    """Returns one {target, goal, measured, status, detail} per target instance.

    Args:
        results: dict from run_all (training, pipeline, serving lists/dicts).
    """
    training = results.get("training", [])
    checks = []
    for row in training:
        if row["framework"] != "tfmodels" or row.get("steps_per_execution", 1) != 1:
            continue
        keys = dict(task=row["task"], size=row["size"], precision=row["precision"],
                    steps_per_execution=1, jit_compile=False)
        keras_row = find(training, framework="keras_hub", **keys)
        if keras_row:
            checks.append(_check(
                "Trainer / keras-hub fit tokens/s", ratio(row["tokens_per_s"],
                                                          keras_row["tokens_per_s"]),
                TRAINER_VS_KERAS_HUB, f"{row['task']}, {row['size']}, {row['precision']}"))
    for row in training:
        if row["framework"] == "hf_torch" and row["precision"] == "mixed_bfloat16":
            ours = find(training, framework="tfmodels", task=row["task"], size=row["size"],
                        precision="mixed_bfloat16", steps_per_execution=1)
            checks.append(_check(
                "Trainer bf16 / transformers+torch bf16 tokens/s",
                ratio(ours and ours["tokens_per_s"], row.get("tokens_per_s")),
                TRAINER_VS_HF_BF16, f"{row['task']}, {row['size']}"))
    for row in training:
        if (row["framework"] == "tfmodels" and row["size"] == "wide"
                and row["precision"] == "mixed_bfloat16" and row.get("mfu") is not None
                and row.get("steps_per_execution", 1) == 1):
            checks.append(_check("MFU at L4/H768 bf16", row["mfu"], MFU_WIDE_BF16,
                                 f"{row['task']}"))
    for pipe in results.get("pipeline", []):
        task = "classification" if pipe["pipeline"] == "classification" else "mlm"
        consumer = find(training, framework="tfmodels", task=task, size="mini",
                        precision="mixed_bfloat16", steps_per_execution=1)
        consumer = consumer or find(training, framework="tfmodels", task=task, size="mini")
        if consumer:
            checks.append(_check(
                "input pipeline / training consumption (examples/s)",
                ratio(pipe["examples_per_s"], consumer["examples_per_s"]), PIPELINE_VS_TRAINING,
                f"{pipe['pipeline']} pipeline vs Trainer {task} mini {consumer['precision']}"))
    serving = results.get("serving")
    if serving and "savedmodel" in serving:
        checks.append(_check(
            "SavedModel batch-64 throughput / keras-hub predict",
            ratio(serving["savedmodel"]["examples_per_s"],
                  serving["keras_hub_predict"]["examples_per_s"]),
            EXPORT_VS_KERAS_PREDICT, "raw strings, BERT-mini, float32"))
    return checks
