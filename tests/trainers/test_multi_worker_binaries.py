"""The binaries under MultiWorkerMirroredStrategy: local worker processes (TF_CONFIG on localhost
ports) sharing one --model_dir, as hosts share NFS or GCS. Only the chief writes the run directory;
every worker ends with bit-identical weights (each Trainer.fit prints a weights digest)."""
import json
import os
import re
import subprocess
import sys

import pytest

from tests import strategy_matrix as matrix
from tests.subprocess_jobs import QUIET_ENV, finish, free_ports
from tfmodels import export as tfm_export
from tfmodels.tasks import common, evaluate, export

DIGEST = re.compile(r"^(\w+_\d+): weights digest ([0-9a-f]{16})$", re.M)


def run_workers(binary, args, num_workers, timeout=900):
    """Runs `python -m trainers.<binary> args` as workers 0..n-1 of one job; returns their outputs."""
    hosts = [f"localhost:{port}" for port in free_ports(num_workers)]
    processes = []
    for index in range(num_workers):
        tf_config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, **QUIET_ENV, TF_CONFIG=json.dumps(tf_config), PYTHONPATH=matrix.REPO)
        processes.append(subprocess.Popen(
            [sys.executable, "-m", f"trainers.{binary}", *args], cwd=matrix.REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return finish(processes, timeout)


def digests_by_worker(outputs):
    """Each worker's sequence of weight digests, one per Trainer.fit call."""
    result = {}
    for output in outputs:
        for worker, digest in DIGEST.findall(output):
            result.setdefault(worker, []).append(digest)
    return result


def files_under(directory):
    return sorted(os.path.relpath(os.path.join(root, name), directory)
                  for root, _, names in os.walk(directory) for name in names)


@pytest.mark.parametrize("cell", matrix.pytest_params(matrix.multi_worker_cells()))
def test_workers_share_one_run_directory_and_end_with_identical_weights(cell, request, tmp_path):
    name, strategy, precision = cell
    encoder_dir = matrix.encoder_for(name, request)
    binary, config_file, _ = matrix.BINARIES[name]
    model_dir = tmp_path / "shared"
    args = [f"--config=configs/{config_file}", f"--model_dir={model_dir}"]
    args += [f"--override={o}" for o in matrix.overrides(name, strategy, precision, encoder_dir)]
    # Three workers for the MLP (where a shared temporary file name once broke the chief), else two.
    num_workers = 3 if name == "train_mlp" else 2
    outputs = run_workers(binary, args, num_workers)
    digests = digests_by_worker(outputs)
    assert sorted(digests) == [f"worker_{i}" for i in range(num_workers)], outputs[0][-3000:]
    assert len({tuple(d) for d in digests.values()}) == 1, digests
    written = files_under(model_dir)
    assert not [f for f in written if ".tmp" in f], written
    assert "config.yaml" in written
    if binary == "pipeline":
        with open(model_dir / "results.json", encoding="utf-8") as f:
            assert f"{model_dir}" in json.load(f)["export"]
    elif binary == "pretrain":
        assert "encoder/config.json" in written
    else:
        check_chief_model(str(model_dir), tmp_path)


def check_chief_model(model_dir, tmp_path):
    """The chief's model evaluates to its recorded test metrics, exports and predicts."""
    with open(os.path.join(model_dir, common.METRICS_FILE)) as f:
        recorded = json.load(f)["test"]
    metrics = evaluate.run(evaluate.load_run_config(model_dir), split="test")
    assert metrics["accuracy"] == pytest.approx(recorded["accuracy"], abs=0.02)
    config = export.load_run_config(model_dir, overrides=[f"export.export_base={tmp_path / 'exports'}"])
    servable = tfm_export.load_servable(export.run(config))
    inputs = [" ".join(["8"] * 64)] if config.model.kind == "mlp" else ["很好"]
    assert len(tfm_export.predict_texts(servable, inputs)) == 1
