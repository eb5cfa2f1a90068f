"""Exports shared by the export tests (each written once per session, verified once)."""
import pytest

import export_tiny_models as tiny

from tfmodels.export import saved_model


@pytest.fixture(scope="session")
def export_root(tmp_path_factory):
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="session")
def vocab_path(export_root):
    return tiny.write_vocab(str(export_root))


@pytest.fixture(scope="session")
def classifier():
    return tiny.build_classifier()


@pytest.fixture(scope="session")
def text_export(export_root, vocab_path, classifier):
    """Version dir of a verified raw-string classifier export (one fresh-process verify)."""
    return saved_model.export_text_classifier(
        classifier, vocab_path=vocab_path, sequence_length=tiny.SEQUENCE_LENGTH, lowercase=True,
        class_names=tiny.CLASS_NAMES, export_base=str(export_root / "text"),
        model_name="sentiment", verify_texts=tiny.VERIFY_TEXTS)


@pytest.fixture(scope="session")
def mlp():
    return tiny.build_mlp()


@pytest.fixture(scope="session")
def mlp_export(export_root, mlp):
    """Version dir of a verified MLP export (one fresh-process verify)."""
    mean, std = tiny.mlp_normalization()
    return saved_model.export_mlp(mlp, mean=mean, std=std, class_names=["a", "b", "c"],
                                  export_base=str(export_root / "mlp"), model_name="digits")
