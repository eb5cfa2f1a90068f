"""SavedModel export for TensorFlow Serving (and its client), Hugging Face export, batched predict."""
from tfmodels.export.huggingface import export_huggingface
from tfmodels.export.predict import (
    PredictInputError,
    decode_lines,
    predict_texts,
    read_input_file,
    read_predict_inputs,
    run_predict,
    write_jsonl,
)
from tfmodels.export.saved_model import (
    FLOAT32_ATOL,
    LOW_PRECISION_ATOL,
    METADATA_FILENAME,
    SERVING_SIGNATURE,
    TOKEN_IDS_SIGNATURE,
    ExportError,
    ExportVerificationError,
    Servable,
    export_encoder,
    export_mlp,
    export_text_classifier,
    list_versions,
    load_servable,
    resolve_version_dir,
    verify_export,
)

__all__ = [
    "FLOAT32_ATOL", "LOW_PRECISION_ATOL", "METADATA_FILENAME", "SERVING_SIGNATURE",
    "TOKEN_IDS_SIGNATURE", "ExportError", "ExportVerificationError", "PredictInputError",
    "Servable", "decode_lines", "export_encoder", "export_huggingface", "export_mlp",
    "export_text_classifier",
    "list_versions", "load_servable", "predict_texts", "read_input_file", "read_predict_inputs",
    "resolve_version_dir", "run_predict", "verify_export", "write_jsonl",
]
