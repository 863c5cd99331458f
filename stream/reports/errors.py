"""ReportError: what stops a report, with a message that names the input and the fix."""

from __future__ import annotations

from stream.errors import LeadstreamError


class ReportError(LeadstreamError):
    """A report cannot be made: unreadable history, a bad option, a bad --fail-if expression."""

    reason = "report_input"
