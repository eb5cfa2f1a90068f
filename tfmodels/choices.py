"""Every fixed set of allowed values, defined once and free of TensorFlow.

The config schema validates against these, the binaries' flags offer them, and the library
modules that implement each choice check their arguments against the same tuple.
"""

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")
MODEL_KINDS = ("mlp", "bert", "lstm")
POOLINGS = ("cls", "mean", "max_mean")
LSTM_POOLINGS = ("last", "max", "mean", "max_mean")
FINETUNE_MODES = ("full", "frozen", "top_k", "gradual", "lora", "frozen_then_full")
OPTIMIZERS = ("adamw", "adam")
DECAYS = ("linear", "cosine", "constant")
BAD_RECORD_POLICIES = ("error", "skip")
EMBEDDING_INITS = ("random", "cooccurrence")
OBJECTIVES = ("classification", "mlm", "electra")
PRETRAIN_OBJECTIVES = ("mlm", "electra")
RECOMPUTE = ("none", "layers")
TRUNCATIONS = ("head", "head_tail")
WORD_SEGMENTERS = ("wordpiece", "jieba")  # what whole-word masking takes as a word
STUDY_PRETRAININGS = ("shared", "per_seed")  # one pretraining for every study seed, or one per seed
