"""Notifications through apprise: Slack, email over SMTP, JSON webhooks, AWS SNS and ~100 more.

Messages are short and readable in a chat client: the title says pipeline, environment and
status; the body gives run id, duration and rows; a failure adds the failed relations and
the first error. A notification that cannot be delivered is logged and never fails the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import apprise

from conveyor.config.secrets import redact_url, register_url, scrub, scrub_loggers

log = logging.getLogger("conveyor.pipeline")
MAX_ERROR = 600
MAX_RELATIONS = 10
scrub_loggers()  # apprise logs hosts and, at debug level, whole URLs


@dataclass
class RunReport:
    """What a notification or dead-man ping says about a run."""

    pipeline: str
    run_id: str
    environments: list[str]
    status: str  # succeeded | failed | missed
    seconds: float
    rows_extracted: int = 0
    rows_loaded: int = 0
    failed: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def title(self) -> str:
        mark = "✅" if self.status == "succeeded" else "❌"
        return f"{mark} Conveyor pipeline {self.pipeline} {self.status} ({', '.join(self.environments)})"

    @property
    def body(self) -> str:
        lines = [
            f"Run {self.run_id} of pipeline {self.pipeline} {self.status} in {_duration(self.seconds)}.",
            f"Environments: {', '.join(self.environments)}.",
            f"Rows extracted: {self.rows_extracted:,}; rows loaded: {self.rows_loaded:,}.",
        ]
        if self.failed:
            shown = ", ".join(self.failed[:MAX_RELATIONS])
            more = f" and {len(self.failed) - MAX_RELATIONS} more" if len(self.failed) > MAX_RELATIONS else ""
            lines.append(f"Failed: {shown}{more}.")
        if self.error:
            error = self.error if len(self.error) <= MAX_ERROR else self.error[: MAX_ERROR - 1] + "…"
            lines.append(f"First error: {error}")
        return scrub("\n".join(lines))


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def send(urls: list[str], report: RunReport) -> list[str]:
    """Send the report to every URL; returns the URLs that failed (already logged)."""
    failed = []
    notify_type = apprise.NotifyType.SUCCESS if report.status == "succeeded" else apprise.NotifyType.FAILURE
    for url in urls:
        register_url(url)  # a notification URL carries its service's token
        sender = apprise.Apprise()
        if not sender.add(url):
            log.warning("notification URL %s is not a valid apprise URL", redact_url(url))
            failed.append(url)
            continue
        if not sender.notify(title=report.title, body=report.body, notify_type=notify_type):
            log.warning("notification to %s could not be delivered", redact_url(url))
            failed.append(url)
    return failed
