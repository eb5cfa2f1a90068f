"""Thin absl command-line binaries: each parses flags and calls one tfmodels.tasks function."""
