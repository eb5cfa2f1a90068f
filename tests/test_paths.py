"""Run-directory file access: local paths through os, remote (scheme://) through tf.io.gfile."""
from tfmodels import paths


def test_local_files_are_written_read_and_walked(tmp_path):
    run = tmp_path / "run"
    (run / "in_domain").mkdir(parents=True)
    with paths.open_file(str(run / "run_kind.txt"), "w") as f:
        f.write("pretrain 预训练\n")
    (run / "in_domain" / "checkpoint").write_text("x")
    assert paths.exists(str(run / "run_kind.txt")) and not paths.exists(str(run / "nope"))
    with paths.open_file(str(run / "run_kind.txt")) as f:
        assert f.read() == "pretrain 预训练\n"
    assert {(d, tuple(files)) for d, _, files in paths.walk(str(run))} == {
        (str(run), ("run_kind.txt",)), (str(run / "in_domain"), ("checkpoint",))}
    assert list(paths.walk(str(tmp_path / "nope"))) == []


def test_remote_paths_go_through_tensorflows_file_systems():
    import tensorflow as tf
    run = "ram://paths_test/run"
    assert paths.is_remote(run) and not paths.is_remote("/tmp/run")
    tf.io.gfile.makedirs(f"{run}/in_domain")  # TensorFlow's in-memory file system lists only made directories
    with paths.open_file(f"{run}/in_domain/checkpoint", "w") as f:
        f.write("x")
    assert paths.exists(f"{run}/in_domain/checkpoint") and not paths.exists(f"{run}/nope")
    with paths.open_file(f"{run}/in_domain/checkpoint") as f:
        assert f.read() == "x"
    assert [(d, files) for d, _, files in paths.walk(run)] == [(run, []), (f"{run}/in_domain", ["checkpoint"])]
