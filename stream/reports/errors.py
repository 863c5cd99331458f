"""ReportError: what stops a report, with a message that names the input and the fix."""

from __future__ import annotations

from stream.errors import LeadstreamError


class ReportError(LeadstreamError):
    """A report cannot be made: unreadable history, a bad option, a bad --fail-if expression."""

    reason = "report_input"


class RefusedLines(ReportError):
    """The replay itself refused lines that passed the line checks: (line number, message)
    of each, numbered as `replay_lines` numbers them (from 1, over the lines it was given)."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        super().__init__(f"{len(errors)} line(s) refused by the replay")
        self.errors = errors
