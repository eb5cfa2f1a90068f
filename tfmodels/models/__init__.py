"""Model builders, named variants, fine-tuning utilities and pretrained loading."""
from tfmodels.models.bert import (BertPretrainer, MaskedMeanPooling, TiedMaskedLMHead,
                                  build_bert_classifier, build_bert_encoder,
                                  build_bert_pretrainer, find_encoder, with_encoder_dropout)
from tfmodels.models.electra import (ELECTRA_INPUT_NAMES, ElectraPretrainer, build_electra_pretrainer,
                                     generator_sizes)
from tfmodels.models.encoder_outputs import PooledEncoderOutput, SequenceOutputAt
from tfmodels.models.finetune import (GradualUnfreezer, ParamCount, apply_lora, check_top_k, count_params,
                                      freeze_base, layer_decay_multipliers, load_lora_weights,
                                      merge_lora, replace_head, save_lora_weights, set_trainable,
                                      unfreeze_all, unfreeze_top_k)
from tfmodels.models.lstm import build_lstm_classifier
from tfmodels.models.mlp import build_mlp
from tfmodels.models.pretrained import (LoadedEncoder, check_sequence_length, load_encoder,
                                        save_encoder)
from tfmodels.models.recompute import RECOMPUTE_MODES, recompute_mode, set_recompute
from tfmodels.models.variants import VARIANTS, BertVariant, bert_encoder_param_count, get_variant

__all__ = [
    "ELECTRA_INPUT_NAMES", "RECOMPUTE_MODES", "VARIANTS", "BertPretrainer", "BertVariant", "ElectraPretrainer",
    "GradualUnfreezer",
    "LoadedEncoder", "MaskedMeanPooling", "ParamCount", "PooledEncoderOutput", "SequenceOutputAt",
    "TiedMaskedLMHead",
    "apply_lora", "bert_encoder_param_count", "build_bert_classifier", "build_bert_encoder",
    "build_bert_pretrainer", "build_electra_pretrainer", "build_lstm_classifier", "build_mlp",
    "check_sequence_length", "check_top_k", "count_params", "find_encoder", "freeze_base", "generator_sizes", "get_variant",
    "layer_decay_multipliers", "load_encoder",
    "load_lora_weights", "merge_lora", "recompute_mode", "replace_head", "save_encoder",
    "save_lora_weights", "set_recompute", "set_trainable", "unfreeze_all", "unfreeze_top_k",
    "with_encoder_dropout",
]
