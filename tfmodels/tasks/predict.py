"""Predictions of an exported SavedModel as JSON lines."""

from __future__ import annotations

import sys

from tfmodels import export as tfm_export


def run(model: str, texts=(), input_file: str | None = None, column: str | None = None,
        batch_size: int = 64, output: str | None = None, stdin=None) -> list[dict]:
    """Reads inputs (texts, a file, or stdin when neither is given), predicts and writes JSON lines."""
    inputs = tfm_export.read_predict_inputs(texts=list(texts) or None, input_file=input_file, column=column,
                                            stdin=stdin if not texts and not input_file else None)
    servable = tfm_export.load_servable(model)
    results = tfm_export.predict_texts(servable, inputs, batch_size=batch_size)
    if output:
        tmp = f"{output}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            tfm_export.write_jsonl(results, f)
        import os
        os.replace(tmp, output)
    else:
        tfm_export.write_jsonl(results, sys.stdout)
    return results
