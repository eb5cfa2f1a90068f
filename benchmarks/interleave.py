"""Interleaved measurement: the sides of a comparison take turns in short rounds.

On a shared machine the CPU share a process gets drifts over minutes. Measuring side A for a
minute and then side B turns that drift into a false ratio (the same comparison moved by
±10% between back-to-back runs). Here every side is built and warmed up first; then each side
runs a few steps in turn, round after round, with the order reversed every other round
(A B C, C B A, ...), so a slow spell falls on all sides alike.

A side is any object with `run(steps) -> list of per-step seconds` (the intervals between
consecutive step ends of that call, so the call's own set-up is never timed).
"""
from __future__ import annotations


def turn_order(names, round_index):
    """The sides' order in round `round_index`: as given in even rounds, reversed in odd ones."""
    names = list(names)
    return names if round_index % 2 == 0 else names[::-1]


def run_rounds(sides, rounds, steps_per_round, warmup_steps):
    """Warms every side up, then runs `rounds` interleaved turns of `steps_per_round` steps.

    Args:
        sides: dict of str to side. Measured in this order (reversed every other round).
        rounds: int >= 1. Turns per side.
        steps_per_round: int >= 2. Steps per turn; each turn yields steps_per_round - 1 times
            (or more with several steps per call).
        warmup_steps: int >= 0. Untimed steps per side first (tracing, warm caches).

    Returns:
        dict of str to list of list of float: per side, the step times of each of its turns.
    """
    if rounds < 1 or steps_per_round < 2:
        raise ValueError(f"need rounds >= 1 and steps_per_round >= 2; got {rounds} and "
                         f"{steps_per_round}")
    for side in sides.values():
        if warmup_steps:
            side.run(warmup_steps)
    turns = {name: [] for name in sides}
    for round_index in range(rounds):
        for name in turn_order(sides, round_index):
            turns[name].append(sides[name].run(steps_per_round))
    return turns
