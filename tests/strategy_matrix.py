"""The strategy x precision matrix: every binary that trains, at tiny sizes, on CPU stand-ins.

No GPU that runs TensorFlow is available to this project, so the accelerator paths run on stand-ins:
`one_device` on /cpu:0 for one GPU, `mirrored` over two logical CPUs for several GPUs, two local
processes with TF_CONFIG for several hosts, and mixed_float16 (loss scaling) on the CPU for pre-Ampere
GPUs. A cell is (binary, strategy, precision); `FAST_CELLS` run in `make test`, the rest are slow.
"""
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STRATEGIES = ("default", "one_device", "mirrored")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
FINETUNE_MODES = ("full", "frozen", "top_k", "gradual", "lora", "frozen_then_full")

# Small enough to train in seconds, large enough for the training loss to fall.
_TEXT = ["data.limit=192", "data.vocab_size=300", "data.sequence_length=24", "data.pretrain_sequence_length=24",
         "data.batch_size=16",
         "data.length_buckets=null", "model.max_sequence_length=32", "trainer.epochs=3",
         "trainer.checkpoint_every_steps=1000", "trainer.log_every_steps=4", "export.verify_examples=8"]
_BERT = ["model.variant=tiny", "trainer.learning_rate=1e-3"]
# The train, masked-LM pretrain and pipeline cells build a one-layer BERT: tracing its steps is most
# of a cell's time. The encoder the fine-tuning cells load has two (`pretrained_encoder`), so top_k=1
# and gradual unfreezing still leave a layer frozen; the ELECTRA cells keep the tiny variant's two.
_ONE_LAYER = ["model.num_layers=1"]
_PRETRAIN = _BERT + ["pretrain.steps=12", "pretrain.batch_size=16", "pretrain.checkpoint_every_steps=6",
                     "pretrain.log_every_steps=4", "data.max_predictions=4", "pretrain.steps_per_execution=1",
             "pretrain.steps_per_epoch=4"]

BINARIES = {
    # name: (binary, config file, overrides)
    "train_mlp": ("train", "mlp_digits.yaml", ["trainer.epochs=3", "export.verify_examples=8"]),
    "train_lstm": ("train", "lstm_sentiment_zh.yaml",
                   _TEXT + ["model.embedding_dim=16", "model.lstm_units=16", "trainer.learning_rate=1e-2"]),
    "train_bert": ("train", "bert_sentiment_zh.yaml", _TEXT + _BERT + _ONE_LAYER),
    "pretrain": ("pretrain", "bert_pretrain_zh.yaml", _TEXT + _PRETRAIN + _ONE_LAYER),
    **{f"finetune_{mode}": ("finetune", "bert_finetune_sentiment_zh.yaml",
                            _TEXT + _BERT + [f"finetune.mode={mode}", "finetune.top_k=1", "finetune.lora_rank=2",
                                             "trainer.head_learning_rate_multiplier=1.0"])
       for mode in FINETUNE_MODES},
    "pipeline": ("pipeline", "demo_zh_sentiment.yaml",
                 _TEXT + _PRETRAIN + _ONE_LAYER + ["trainer.epochs=1", "pretrain.in_domain_steps=4",
                                                   # one-review windows trimmed to the batch and batched by length
                                                   "pretrain.in_domain_length_buckets=[12,18]",
                                                   # training tokens -> [MASK] and texts cut to spans,
                                                   # drawn per batch on every worker
                                                   "data.input_mask_rate=0.1", "data.crop_rate=0.3",
                                                   "data.crop_min_tokens=4"]),
    # Last, so the precision rotation of the cells above is unchanged.
    "pretrain_electra": ("pretrain", "bert_pretrain_zh.yaml", _TEXT + _PRETRAIN + ["pretrain.objective=electra"]),
}
MULTI_WORKER_BINARIES = ("train_mlp", "pretrain", "finetune_full", "pipeline", "pretrain_electra")


def in_process_cells():
    """(binary, strategy, precision) for every binary under every in-process strategy; the
    precision rotates so that each binary and each strategy meets all three precisions."""
    cells = []
    for i, name in enumerate(BINARIES):
        for j, strategy in enumerate(STRATEGIES):
            cells.append((name, strategy, PRECISIONS[(i + j) % len(PRECISIONS)]))
    return cells


def multi_worker_cells():
    return [(name, "multi_worker", PRECISIONS[i % len(PRECISIONS)])
            for i, name in enumerate(MULTI_WORKER_BINARIES)]


# The cells `make test` runs: each strategy and precision, the one-GPU fine-tuning crash, and the
# pipeline under one_device (the command), and each model kind trained end to end. Everything
# else is @pytest.mark.slow, among them LoRA (mirrored, bfloat16), moved there to keep `make test`
# near its time budget: mirrored bfloat16 stays in the BERT cell, LoRA training in
# tests/models/test_finetune.py.
FAST_CELLS = {
    ("train_mlp", "default", "float32"),
    ("train_mlp", "mirrored", "mixed_float16"),
    ("train_lstm", "one_device", "mixed_float16"),
    ("train_bert", "mirrored", "mixed_bfloat16"),  # embedding gradients clipped across replicas
    ("pretrain", "mirrored", "mixed_float16"),
    ("finetune_full", "one_device", "mixed_float16"),
    ("pipeline", "one_device", "mixed_float16"),
    ("train_mlp", "multi_worker", "float32"),
}


def config_path(name):
    return os.path.join(REPO, "configs", BINARIES[name][1])


def overrides(name, strategy, precision, encoder_dir=None):
    """The cell's overrides (plus the encoder for fine-tuning cells)."""
    extra = [f"strategy={strategy}", f"precision={precision}"]
    if BINARIES[name][0] == "finetune":
        extra.append(f"finetune.encoder={encoder_dir}")
    return BINARIES[name][2] + extra


def cell_id(cell):
    return "-".join(cell)


def pretrained_encoder(model_dir):
    """Pretrains the two-layer tiny encoder the fine-tuning cells load (default strategy, float32)."""
    import keras
    from tfmodels.config import load_config
    from tfmodels.tasks import pretrain
    config = load_config(config_path("pretrain"), overrides("pretrain", "default", "float32") + ["model.num_layers=2"],
                         model_dir=model_dir)
    result = pretrain.run(config)
    keras.mixed_precision.set_global_policy("float32")
    return result["encoder_dir"]


def pytest_params(cells):
    """The cells as pytest params: FAST_CELLS plain, the others marked slow."""
    import pytest
    return [pytest.param(cell, marks=() if cell in FAST_CELLS else (pytest.mark.slow,), id=cell_id(cell))
            for cell in cells]


def encoder_for(name, request):
    """The pretrained encoder (tests/conftest.py's `matrix_encoder_dir`) for fine-tuning cells, else None."""
    return request.getfixturevalue("matrix_encoder_dir") if BINARIES[name][0] == "finetune" else None
