"""Data errors and the bad-record policy shared by every reader."""
import collections

from tfmodels.choices import BAD_RECORD_POLICIES as ON_BAD_RECORD_CHOICES


class DataError(ValueError):
    """A bad input record or file; the message is one line naming file, line and reason."""

    def __init__(self, source, line, reason, allowed=None):
        """Builds the error.

        Args:
            source: str. File path or dataset name holding the bad record.
            line: int | None. 1-based line number (or record index) of the record.
            reason: str. What is wrong, including the offending value.
            allowed: str | None. What would have been accepted.
        """
        self.source = str(source)
        self.line = line
        self.reason = reason
        self.allowed = allowed
        location = self.source if line is None else f"{self.source}:{line}"
        message = f"{location}: {reason}"
        if allowed:
            message += f" (allowed: {allowed})"
        super().__init__(message.replace("\n", "\\n"))


def check_policy(on_bad_record):
    """Validates an `on_bad_record` value.

    Args:
        on_bad_record: str. "error" or "skip".
    """
    if on_bad_record not in ON_BAD_RECORD_CHOICES:
        raise ValueError(
            f"on_bad_record={on_bad_record!r} unknown; choose one of "
            f"{', '.join(ON_BAD_RECORD_CHOICES)}")
    return on_bad_record


class BadRecordReport:
    """Applies an `on_bad_record` policy and counts the records skipped per reason.

    Under "error" the first bad record raises a `DataError`; under "skip" it is
    counted (per reason kind) and the first few examples are kept, so nothing is
    dropped silently: print the report or read `counts`.

    Args:
        on_bad_record: str. "error" (default) or "skip".
        max_examples: int. How many example messages to keep per reason.
    """

    def __init__(self, on_bad_record="error", max_examples=3):
        self.on_bad_record = check_policy(on_bad_record)
        self.max_examples = max_examples
        self.counts = collections.Counter()
        self.examples = collections.defaultdict(list)
        self.records_read = 0

    def bad(self, kind, source, line, reason, allowed=None):
        """Handles one bad record: raises under "error", counts it under "skip".

        Args:
            kind: str. Short reason key, e.g. "ragged_row", "missing_label".
            source: str. File or dataset name.
            line: int | None. 1-based line number.
            reason: str. Human-readable reason with the offending value.
            allowed: str | None. What would have been accepted.
        """
        error = DataError(source, line, reason, allowed)
        if self.on_bad_record == "error":
            raise error
        self.counts[kind] += 1
        if len(self.examples[kind]) < self.max_examples:
            self.examples[kind].append(str(error))

    @property
    def skipped(self):
        """Total number of skipped records."""
        return sum(self.counts.values())

    def merge(self, other):
        """Adds another report's counts and examples into this one."""
        self.counts.update(other.counts)
        self.records_read += other.records_read
        for kind, messages in other.examples.items():
            room = self.max_examples - len(self.examples[kind])
            self.examples[kind].extend(messages[:max(room, 0)])
        return self

    def as_dict(self):
        """Returns {"records_read", "skipped", "counts"} for logs and JSON."""
        return {"records_read": self.records_read, "skipped": self.skipped,
                "counts": dict(sorted(self.counts.items()))}

    def __str__(self):
        if not self.counts:
            return f"bad records: none ({self.records_read} read)"
        lines = [f"bad records skipped: {self.skipped} of {self.records_read} read"]
        for kind, count in sorted(self.counts.items()):
            lines.append(f"  {kind}: {count}")
            lines.extend(f"    e.g. {message}" for message in self.examples[kind])
        return "\n".join(lines)

    __repr__ = __str__
