"""One function per binary: each takes a resolved ExperimentConfig and does the whole job.

The absl binaries in trainers/ only parse flags and call these, so tests call them directly.
"""
