"""Safe loading: no code from a .keras file, a YAML file or a model directory runs."""
import os
import shutil

import keras
import pytest

from tfmodels.config import ConfigError, load_config
from tfmodels.models import load_encoder
from tfmodels.tasks import common


@pytest.fixture(scope="module")
def lambda_model_file(tmp_path_factory):
    """A .keras file whose Lambda layer would run Python code when deserialized unsafely."""
    path = str(tmp_path_factory.mktemp("lambda") / "model.keras")
    inputs = keras.Input((4,), name="features")
    outputs = keras.layers.Lambda(lambda x: x * 2, name="double")(inputs)
    keras.Model(inputs, keras.layers.Dense(2, name="logits")(outputs)).save(path)
    return path


def test_model_loading_refuses_a_lambda_layer(lambda_model_file):
    with pytest.raises(ValueError, match="(?i)lambda|unsafe|safe_mode"):
        common.load_model(lambda_model_file)


def test_encoder_loading_refuses_a_lambda_layer(lambda_model_file):
    with pytest.raises(ValueError, match="(?i)lambda|unsafe|safe_mode"):
        load_encoder(lambda_model_file)


def test_finetune_binary_refuses_a_lambda_layer(binaries, lambda_model_file, tmp_path):
    result = binaries.run("finetune", "--config=configs/mlp_digits.yaml", f"--model_dir={tmp_path / 'run'}",
                          f"--override=finetune.encoder={lambda_model_file}", "--override=trainer.epochs=1")
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")], result
    assert not os.path.exists(tmp_path / "run" / "model.keras")


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['touch {marker}']",
                                 "!!python/name:os.system", "!!python/object:tfmodels.config.ExperimentConfig {{}}"])
def test_yaml_python_tags_are_refused(tmp_path, tag):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: {tag.format(marker=marker)}\n")
    with pytest.raises(ConfigError, match="evil.yaml:1"):
        load_config(str(path))
    assert not marker.exists()


def test_a_model_directory_with_python_files_runs_none_of_them(binaries, mlp_model_dir, tmp_path):
    """evaluate and export read config.yaml, model.keras and JSON only; planted .py files stay inert."""
    model_dir = tmp_path / "model"
    shutil.copytree(mlp_model_dir, model_dir)
    marker = tmp_path / "executed"
    payload = f"open({str(marker)!r}, 'w').write('x')\n"
    for name in ("__init__.py", "sitecustomize.py", "tfmodels.py", "custom_layers.py", "usercustomize.py"):
        (model_dir / name).write_text(payload)
    with open(model_dir / "config.yaml", "a") as f:
        f.write("# custom_objects: custom_layers.py\n")
    evaluated = binaries.run("evaluate", f"--model_dir={model_dir}")
    assert evaluated.returncode == 0, evaluated
    exported = binaries.run("export", f"--model_dir={model_dir}", f"--export_base={tmp_path / 'exports'}",
                            "--noverify")
    assert exported.returncode == 0, exported
    assert not marker.exists()


def test_config_yaml_in_a_model_directory_is_loaded_safely(binaries, mlp_model_dir, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(mlp_model_dir, model_dir)
    marker = tmp_path / "pwned"
    (model_dir / "config.yaml").write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    result = binaries.run("evaluate", f"--model_dir={model_dir}")
    assert result.returncode == 2, result
    assert "config.yaml:1" in result.stderr
    assert not marker.exists()
