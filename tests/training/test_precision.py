import keras
import pytest

from tfmodels.training import precision


@pytest.mark.parametrize("capabilities, flags, expected", [
    ([(8, 0)], set(), "mixed_bfloat16"),
    ([(7, 5)], {"avx512_bf16"}, "mixed_float16"),
    ([], {"avx512_bf16"}, "mixed_bfloat16"),
    ([], {"amx_bf16", "avx2"}, "mixed_bfloat16"),
    ([], {"avx2"}, "float32"),
])
def test_auto_precision_follows_hardware(capabilities, flags, expected):
    assert precision.resolve_precision("auto", capabilities, flags) == expected


@pytest.mark.parametrize("capabilities, flags", [([], {"avx512_bf16"}), ([(8, 0)], set()), ([(7, 5)], set())])
def test_auto_precision_trains_recurrent_models_in_float32(capabilities, flags):
    assert precision.resolve_precision("auto", capabilities, flags, model_kind="lstm") == "float32"
    assert precision.resolve_precision("auto", capabilities, flags, model_kind="bert") != "float32"
    assert precision.resolve_precision("mixed_bfloat16", capabilities, flags, model_kind="lstm") == "mixed_bfloat16"


def test_explicit_names_pass_through():
    assert precision.resolve_precision("mixed_float16") == "mixed_float16"


def test_unknown_precision_raises():
    with pytest.raises(precision.PrecisionError, match="precision 'fp8' unknown; choose one of auto"):
        precision.resolve_precision("fp8")


def test_cpu_flags_reads_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor : 0\nflags\t\t: fpu avx512_bf16 sse\n")
    assert precision.cpu_flags(str(path)) == {"fpu", "avx512_bf16", "sse"}
    assert precision.cpu_flags(str(tmp_path / "missing")) == set()


def test_apply_precision_sets_global_policy():
    assert precision.apply_precision("mixed_bfloat16") == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
