"""`saved_model_cli` with the tensorflow-text ops registered, for exports that tokenize in-graph.

The stock `saved_model_cli run` imports the whole graph and fails on a text classifier export
with `Op type not registered 'RegexSplitWithOffsets'` (also for `predict_token_ids`, since all
signatures share one graph). This entry point imports tensorflow_text first, then runs the stock
tool with the same arguments:

    python -m tfmodels.export.saved_model_cli run --dir exports/sentiment/1 \
        --tag_set serve --signature_def serving_default --input_exprs 'text=["很好看"]'
"""
import sys


def main():
    """Registers the tensorflow-text ops and runs TensorFlow's saved_model_cli on sys.argv."""
    import tensorflow_text  # noqa: F401
    from tensorflow.python.tools import saved_model_cli

    sys.argv[0] = "saved_model_cli"
    return saved_model_cli.main()


if __name__ == "__main__":
    sys.exit(main())
