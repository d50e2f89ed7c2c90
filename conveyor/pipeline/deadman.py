"""The dead-man switch, in healthchecks.io style.

``<url>/start`` when a run begins, ``<url>`` when it succeeds, ``<url>/fail`` when it fails,
each with a short text body. A ping that cannot be delivered is retried briefly and logged;
it never fails the run, because monitoring must not be the reason an ETL fails.

A ping URL is a secret as a whole (its key is all a stranger needs to silence the alarm), so
it is registered for scrubbing, logged only as ``scheme://host/…``, and the HTTP client's
own per-request log lines are kept out.
"""

from __future__ import annotations

import logging

import httpx
import tenacity

from conveyor.config.secrets import redact_url, register_url, scrub, scrub_loggers

log = logging.getLogger("conveyor.pipeline")
SUFFIX = {"start": "/start", "success": "", "fail": "/fail"}
scrub_loggers()


def ping(urls: list[str], event: str, body: str, *, timeout_s: float = 5.0, attempts: int = 3) -> list[str]:
    """Send one ping to every URL; returns the URLs that could not be reached (already logged)."""
    failed = []
    for url in urls:
        register_url(url)
        target = url.rstrip("/") + SUFFIX[event]
        try:
            _post(target, body, timeout_s, attempts)
        except (httpx.HTTPError, tenacity.RetryError) as exc:
            log.warning("dead-man ping %s to %s failed: %s", event, redact_url(target), scrub(_reason(exc)))
            failed.append(url)
    return failed


def _reason(exc: BaseException) -> str:
    """Why a ping failed, without the URL httpx puts in its messages."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code} {exc.response.reason_phrase}".strip()
    return f"{type(exc).__name__}: {exc}"


def _post(url: str, body: str, timeout_s: float, attempts: int) -> None:
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=0.2, max=2),
        retry=tenacity.retry_if_exception_type(httpx.HTTPError),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            response = httpx.post(
                url, content=body.encode(), timeout=timeout_s, headers={"content-type": "text/plain; charset=utf-8"}
            )
            response.raise_for_status()
