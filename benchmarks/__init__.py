"""Benchmarks of tfmodels against keras-hub and Hugging Face transformers/PyTorch.

Not tests: `python -m benchmarks.run_all [--quick]` runs every benchmark in one run and rewrites
BENCHMARKS.md. Each benchmark function returns plain dicts so tests can check their structure.
"""
