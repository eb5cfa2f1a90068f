"""Runs tfmodels binaries in forked children of one process that imported TensorFlow once.

Each request (one JSON line on stdin: module, args, env, cwd, optional prepare module) forks a child that runs
`python -m <module> <args>` through runpy, exactly as the command line does, with stdout and
stderr sent to files; the reply (one JSON line on stdout) holds the exit status and both
outputs. This keeps a matrix of failing runs from paying TensorFlow's import time per case.
Absl flags are defined in the child only, so every run starts with fresh flags.

Usage: python binary_server.py   (then write requests to stdin)
"""
import json
import os
import runpy
import signal
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import importlib  # noqa: E402
import pkgutil  # noqa: E402

import tensorflow  # noqa: E402,F401  (the expensive imports, done once before forking)
import tfmodels.tasks  # noqa: E402


def preload_tasks():
    """Imports every task module (TensorFlow, Keras, keras-hub and tensorflow-text with them)."""
    for module in pkgutil.iter_modules(tfmodels.tasks.__path__):
        try:
            importlib.import_module(f"tfmodels.tasks.{module.name}")
        except Exception:  # a module that fails to import fails in the child, with its message
            pass


def run_child(request, stdout_path, stderr_path):
    """Replaces this child's stdio and runs the module as __main__; never returns."""
    try:
        _run_child(request, stdout_path, stderr_path)
    finally:
        os._exit(70)


def _run_child(request, stdout_path, stderr_path):
    for fd, path in ((1, stdout_path), (2, stderr_path)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.stdin = open(os.devnull)
    os.environ.update(request.get("env", {}))
    os.chdir(request.get("cwd", ROOT))
    sys.argv = [request["module"]] + list(request["args"])
    status = 0
    try:
        if request.get("prepare"):  # a fault-injection module patching the library first
            __import__(request["prepare"])
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # an uncaught exception prints its traceback, as python -m does
        import traceback
        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def serve():
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for line in sys.stdin:
        request = json.loads(line)
        with tempfile.TemporaryDirectory() as tmp:
            out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
            pid = os.fork()
            if pid == 0:
                run_child(request, out, err)
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            reply = {"returncode": code}
            for key, path in (("stdout", out), ("stderr", err)):
                with open(path, encoding="utf-8", errors="replace") as f:
                    reply[key] = f.read()
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    preload_tasks()
    serve()
