"""The EHR HTTP client: one object that owns timeouts, retries, token refresh and link safety.

Callers ask for a page (:meth:`EhrClient.search`, :meth:`EhrClient.follow`, :meth:`EhrClient.history`),
a resource (:meth:`EhrClient.read`) or a write (:meth:`EhrClient.create`, :meth:`EhrClient.update`) and
get it, or one :class:`EhrError` subclass saying what failed, where (the URL path, never the query)
and after how many attempts.

Retry policy (:class:`RetryPolicy`, built on tenacity; tests inject ``sleep`` and ``clock``):

- 429 and 503 with ``Retry-After`` (seconds or an HTTP date) wait what the server asks, up to
  ``max_retry_after``; a longer ask fails at once as :class:`EhrUnavailable` with ``retry_after`` set.
- 408, 429 and 5xx (but 501/505, which no retry cures), timeouts and connection errors retry with
  exponential backoff and full jitter, at most ``attempts`` times and never past ``deadline``.
- A POST (create) is retried only when the server surely did not act on it: 429, 503 or a connection
  that was never established. A lost response to a POST is :class:`EhrUnavailable`, not a retry that
  could create the resource twice.
- A 401 or 403 invalidates the token and tries once more with a fresh one (not counted as a retry).

Nothing here logs a URL query, a header value, a token or a body: logs carry the operation
(``search Patient``), the status and the attempt number.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from ipaddress import ip_address
from typing import Any, Protocol
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import requests
import urllib3
from tenacity import Retrying, retry_if_exception_type, wait_random_exponential

from fhir_platform.observability import logger

FHIR_JSON = "application/fhir+json"
DEFAULT_USER_AGENT = "fhir-platform-connector/0.1"

_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{0,63}$")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_NOT_RETRIED_5XX = frozenset({501, 505})
_SUMMARY_CHARS = 160



class _DropQueries(logging.Filter):
    """urllib3 logs each request's full URL at DEBUG; a FHIR search query may carry PHI (names, birth
    dates, identifiers), so its log records keep the path and lose the query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.split("?", 1)[0] + "?[query omitted]" if isinstance(arg, str) and "?" in arg else arg
                for arg in record.args
            )
        return True


_URLLIB3_LOG = logging.getLogger("urllib3.connectionpool")
if not any(isinstance(f, _DropQueries) for f in _URLLIB3_LOG.filters):
    _URLLIB3_LOG.addFilter(_DropQueries())


# --------------------------------------------------------------------------------------------- errors


class EhrError(Exception):
    """A call to the EHR failed. The message says what, with the status, the URL path (never the
    query, which may carry PHI) and the number of attempts; it never holds a token or a body beyond a
    short OperationOutcome summary."""

    def __init__(
        self, message: str, *, status: int | None = None, url_path: str | None = None, attempts: int = 0
    ) -> None:
        self.message = message
        self.status = status
        self.url_path = url_path
        self.attempts = attempts
        where = []
        if status is not None:
            where.append(f"HTTP {status}")
        if url_path:
            where.append(url_path)
        if attempts:
            where.append(f"{attempts} attempt{'s' if attempts != 1 else ''}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)


class EhrUnavailable(EhrError):
    """5xx, 429, timeouts or connection errors that outlasted the retry policy (or a ``Retry-After``
    longer than the policy waits: ``retry_after`` then holds the server's ask, in seconds)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class EhrAuthFailed(EhrError):
    """The EHR refused the credentials even after one token refresh, or the token endpoint refused
    (``oauth_error`` holds its OAuth ``error`` code), or the credentials could not be built."""

    def __init__(self, message: str, *, oauth_error: str | None = None, **kwargs: Any) -> None:
        self.oauth_error = oauth_error
        super().__init__(message, **kwargs)


class EhrRejected(EhrError):
    """The EHR refused the request (4xx other than 401/403/410, or 501/505); ``outcome`` is a short
    summary of the OperationOutcome it sent, if any."""

    def __init__(self, message: str, *, outcome: str | None = None, **kwargs: Any) -> None:
        self.outcome = outcome
        super().__init__(message, **kwargs)


class EhrConflict(EhrRejected):
    """409 or 412: the resource changed on the EHR; ``current_version`` is the version its ETag names."""

    def __init__(self, message: str, *, current_version: str | None = None, **kwargs: Any) -> None:
        self.current_version = current_version
        super().__init__(message, **kwargs)


class ResourceGone(EhrError):
    """410: the resource was deleted on the EHR."""


class OffOriginLink(EhrError):
    """A ``next`` link leaves the base URL (scheme, host, port, or a path outside the base path).
    It was not fetched: following it would send the EHR token elsewhere."""


class InvalidResponse(EhrError):
    """The EHR answered 2xx with something that is not the JSON expected (not JSON, not a Bundle)."""


# ------------------------------------------------------------------------------------- configuration


class TokenProvider(Protocol):
    """Gives the bearer token for EHR requests (``None``: send no Authorization header)."""

    def token(self) -> str | None: ...

    def invalidate(self) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one call tries. ``attempts`` counts every request sent for the call (the first one
    included); waits use full jitter: a random time in [0, min(backoff_max, backoff_base·2ⁿ⁻¹)]
    after the n-th failure, unless the server sent ``Retry-After``."""

    attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    max_retry_after: float = 120.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    deadline: float = 300.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        for name in ("backoff_base", "backoff_max", "max_retry_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"RetryPolicy.{name} must not be negative")
        for name in ("connect_timeout", "read_timeout", "deadline"):
            if getattr(self, name) <= 0:
                raise ValueError(f"RetryPolicy.{name} must be positive")


@dataclass
class ClientStats:
    """Counters for benchmarks: every request this client sent, retries included (a SMART token
    provider counts its token requests in its own ``stats``)."""

    requests: int = 0
    retries: int = 0
    token_refreshes: int = 0
    timeouts: int = 0
    connection_errors: int = 0
    by_status: Counter[int] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "token_refreshes": self.token_refreshes,
            "timeouts": self.timeouts,
            "connection_errors": self.connection_errors,
            "by_status": dict(sorted(self.by_status.items())),
        }


@dataclass(frozen=True)
class WriteResult:
    """What a create or update returned: the resource if the server sent it, else what the headers
    say (``Location`` → ``id``/``version_id``, ``ETag`` → ``version_id``, ``Last-Modified`` →
    ``last_updated`` as ISO 8601)."""

    status: int
    resource: dict[str, Any] | None
    id: str | None
    version_id: str | None
    last_updated: str | None


# ------------------------------------------------------------------------------ the retrying sender


def is_retryable_status(status: int) -> bool:
    return status in (408, 429) or (500 <= status <= 599 and status not in _NOT_RETRIED_5XX)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date; ``now`` is the wall
    clock in epoch seconds). ``None`` when absent or unreadable; a date in the past gives 0."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    when = _http_date(value)
    return None if when is None else max(0.0, when.timestamp() - now)


class _RetryableFailure(Exception):
    """One attempt failed in a way worth another try (internal to :class:`Sender`)."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


def _never_sent(exc: requests.ConnectionError) -> bool:
    """True when the connection was never established, so the server cannot have seen the request."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", exc.args[0]) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError)


class Sender:
    """Sends one logical request with the retry policy. Shared by :class:`EhrClient` and the token
    providers, so token requests retry exactly like EHR requests."""

    def __init__(
        self,
        session: requests.Session,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] | None = None,
        stats: ClientStats | None = None,
    ) -> None:
        self.session = session
        self.policy = policy
        self.sleep = sleep or time.sleep
        self.clock = clock or time.monotonic
        self.wall_clock = wall_clock or time.time
        self.stats = stats or ClientStats()

    def send(
        self,
        prepare: Callable[[], dict[str, Any]],
        *,
        op: str,
        url_path: str,
        idempotent: bool = True,
        prior_attempts: int = 0,
    ) -> tuple[requests.Response, int]:
        """Send ``requests.Session.request(**prepare())`` until it gets a response that is not worth
        retrying; return it with the attempts made (``prior_attempts`` included). ``prepare`` runs
        once per attempt (a token request signs a fresh assertion each time)."""
        policy = self.policy
        start = self.clock()
        attempts = prior_attempts
        deadline_hit = False

        def attempt() -> requests.Response:
            nonlocal attempts
            attempts += 1
            remaining = max(0.001, policy.deadline - (self.clock() - start))
            timeout = (min(policy.connect_timeout, remaining), min(policy.read_timeout, remaining))
            self.stats.requests += 1
            try:
                response = self.session.request(timeout=timeout, allow_redirects=False, **prepare())
            except requests.Timeout as exc:
                self.stats.timeouts += 1
                connect = isinstance(exc, requests.ConnectTimeout)
                reason = "connect timed out" if connect else "read timed out"
                if not idempotent and not connect:
                    raise EhrUnavailable(
                        f"{op}: {reason}; not retried, the EHR may have acted on it",
                        url_path=url_path,
                        attempts=attempts,
                    ) from None
                raise _RetryableFailure(reason) from None
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                self.stats.connection_errors += 1
                sent = not (isinstance(exc, requests.ConnectionError) and _never_sent(exc))
                if not idempotent and sent:
                    raise EhrUnavailable(
                        f"{op}: connection lost; not retried, the EHR may have acted on it",
                        url_path=url_path,
                        attempts=attempts,
                    ) from None
                raise _RetryableFailure("connection failed" if not sent else "connection lost") from None
            except requests.RequestException as exc:
                raise EhrUnavailable(
                    f"{op}: request failed ({type(exc).__name__})", url_path=url_path, attempts=attempts
                ) from None
            status = response.status_code
            self.stats.by_status[status] += 1
            logger.debug("EHR response", extra={"ehr_op": op, "status": status, "attempt": attempts})
            if is_retryable_status(status) and (idempotent or status in (429, 503)):
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self.wall_clock())
                if retry_after is not None and retry_after > policy.max_retry_after:
                    raise EhrUnavailable(
                        f"{op}: the EHR asked to retry after {retry_after:.0f} s, longer than the "
                        f"{policy.max_retry_after:.0f} s this client waits",
                        retry_after=retry_after,
                        status=status,
                        url_path=url_path,
                        attempts=attempts,
                    )
                raise _RetryableFailure(f"HTTP {status}", status=status, retry_after=retry_after)
            return response

        jitter = wait_random_exponential(multiplier=policy.backoff_base, max=policy.backoff_max)

        def wait(state: Any) -> float:
            failure = state.outcome.exception()
            if isinstance(failure, _RetryableFailure) and failure.retry_after is not None:
                return failure.retry_after
            return jitter(state)

        def stop(state: Any) -> bool:
            nonlocal deadline_hit
            if state.attempt_number >= policy.attempts:
                return True
            if self.clock() - start + state.upcoming_sleep >= policy.deadline:
                deadline_hit = True
                return True
            return False

        def before_sleep(state: Any) -> None:
            self.stats.retries += 1
            failure = state.outcome.exception()
            logger.warning(
                "EHR request retried",
                extra={
                    "ehr_op": op,
                    "status": getattr(failure, "status", None),
                    "reason": getattr(failure, "reason", None),
                    "attempt": attempts,
                    "wait_s": round(state.upcoming_sleep, 3),
                },
            )

        retrying = Retrying(
            retry=retry_if_exception_type(_RetryableFailure),
            wait=wait,
            stop=stop,
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(attempt), attempts
        except _RetryableFailure as failure:
            why = "the call's deadline would pass" if deadline_hit else "out of attempts"
            raise EhrUnavailable(
                f"{op}: {failure.reason}; gave up, {why}",
                retry_after=failure.retry_after,
                status=failure.status,
                url_path=url_path,
                attempts=attempts,
            ) from None


# ------------------------------------------------------------------------------------ small parsers


def json_body(response: requests.Response, *, op: str, url_path: str, attempts: int) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        content_type = (response.headers.get("Content-Type") or "no content type").split(";")[0][:60]
        raise InvalidResponse(
            f"{op}: the response is not JSON ({content_type})",
            status=response.status_code,
            url_path=url_path,
            attempts=attempts,
        ) from None


def outcome_summary(body: Any) -> str | None:
    """A short, safe summary of an OperationOutcome: each issue's code and the start of its text."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return None
    parts = []
    for issue in body.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        code = issue.get("code") if isinstance(issue.get("code"), str) else "unknown"
        details = issue.get("details") if isinstance(issue.get("details"), dict) else {}
        text = issue.get("diagnostics") or details.get("text")
        parts.append(f"{code}: {text}" if isinstance(text, str) and text else code)
    summary = "; ".join(parts)
    return summary[: _SUMMARY_CHARS - 1] + "…" if len(summary) > _SUMMARY_CHARS else summary or None


def etag_version(value: str | None) -> str | None:
    """``W/"3"`` → ``3``."""
    if not value:
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    return value or None


def _if_match(version: str) -> str:
    version = version.strip()
    return version if version.startswith(('W/"', '"')) else f'W/"{version}"'


def _http_date(value: str) -> datetime | None:
    """An HTTP date (RFC 9110) as an aware datetime, or None."""
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _http_date_iso(value: str | None) -> str | None:
    when = _http_date(value) if value else None
    return None if when is None else when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint_url(url: str, what: str) -> None:
    """An EHR URL must be absolute https (plain http only to a loopback host, for local servers), with
    no credentials, query or fragment."""
    parts = urlsplit(url)
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.query
        or parts.fragment
    ):
        raise ValueError(f"{what} must be an absolute https URL without credentials, query or fragment")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(f"{what} must use https (plain http is allowed only to a loopback host)")


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


# ------------------------------------------------------------------------------------------ client


class EhrClient:
    """A FHIR R4 client for one EHR base URL. One ``requests.Session`` per client (connection reuse);
    ``stats`` counts what it sent."""

    def __init__(
        self,
        base_url: str,
        auth: TokenProvider,
        *,
        retry: RetryPolicy = RetryPolicy(),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        check_endpoint_url(base_url, "base_url")
        self.base_url = base_url.rstrip("/")
        self._base = urlsplit(self.base_url)
        self._auth = auth
        self._user_agent = user_agent
        self.stats = ClientStats()
        self._sender = Sender(
            session or requests.Session(), retry, sleep=sleep, clock=clock, wall_clock=wall_clock, stats=self.stats
        )

    # -- reads --------------------------------------------------------------------------------------

    def search(self, resource_type: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``GET {base}/{type}?params`` → the searchset Bundle. A list value repeats the parameter."""
        _check_type(resource_type)
        return self._get_bundle(f"{self.base_url}/{resource_type}", params, op=f"search {resource_type}")

    def follow(self, next_url: str) -> dict[str, Any]:
        """Fetch a Bundle's ``next`` link, after checking it stays under the base URL
        (:class:`OffOriginLink` otherwise; the link is then never requested)."""
        url = self._same_origin(next_url)
        rest = urlsplit(url).path[len(self._base.path.rstrip("/")) :].strip("/").split("/")[0]
        return self._get_bundle(url, None, op=f"follow {rest}" if _RESOURCE_TYPE.match(rest) else "follow")

    def history(self, resource_type: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``GET {base}/{type}/_history?params`` → the history Bundle."""
        _check_type(resource_type)
        return self._get_bundle(
            f"{self.base_url}/{resource_type}/_history", params, op=f"history {resource_type}"
        )

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """``GET {base}/{type}/{id}`` → the resource."""
        _check_type(resource_type)
        _check_id(resource_id)
        op = f"read {resource_type}"
        url = f"{self.base_url}/{resource_type}/{resource_id}"
        response, attempts, path = self._call("GET", url, op=op)
        body = json_body(response, op=op, url_path=path, attempts=attempts)
        if not isinstance(body, dict) or body.get("resourceType") != resource_type:
            raise InvalidResponse(
                f"{op}: expected a {resource_type}, got {_kind(body)}",
                status=response.status_code,
                url_path=path,
                attempts=attempts,
            )
        return body

    # -- writes (for the outbound connector) --------------------------------------------------------

    def create(self, resource_type: str, resource: Mapping[str, Any]) -> WriteResult:
        """``POST {base}/{type}``. Retried only when the EHR cannot have acted on it (see module doc)."""
        _check_type(resource_type)
        op = f"create {resource_type}"
        response, attempts, path = self._call(
            "POST", f"{self.base_url}/{resource_type}", op=op, body=resource, idempotent=False
        )
        return self._write_result(response, resource_type, op=op, url_path=path, attempts=attempts)

    def update(
        self, resource_type: str, resource_id: str, resource: Mapping[str, Any], if_match: str | None = None
    ) -> WriteResult:
        """``PUT {base}/{type}/{id}``; ``if_match`` (a version id, or an ETag) makes it conditional:
        a version that moved on gives :class:`EhrConflict` with the EHR's current version."""
        _check_type(resource_type)
        _check_id(resource_id)
        op = f"update {resource_type}"
        headers = {"If-Match": _if_match(if_match)} if if_match else None
        response, attempts, path = self._call(
            "PUT", f"{self.base_url}/{resource_type}/{resource_id}", op=op, body=resource, headers=headers
        )
        return self._write_result(response, resource_type, op=op, url_path=path, attempts=attempts)

    # -- internals ----------------------------------------------------------------------------------

    def _get_bundle(self, url: str, params: Mapping[str, Any] | None, *, op: str) -> dict[str, Any]:
        response, attempts, path = self._call("GET", url, op=op, params=params)
        body = json_body(response, op=op, url_path=path, attempts=attempts)
        if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
            raise InvalidResponse(
                f"{op}: expected a Bundle, got {_kind(body)}",
                status=response.status_code,
                url_path=path,
                attempts=attempts,
            )
        return body

    def _call(
        self,
        method: str,
        url: str,
        *,
        op: str,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> tuple[requests.Response, int, str]:
        """Send with retries and one token refresh on 401/403; raise the typed error for any
        non-2xx answer; return the response, the attempts made and the URL path."""
        url_path = urlsplit(url).path
        data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
        attempts = 0
        refreshed = False
        while True:
            token = self._auth.token()
            request_headers = {"Accept": FHIR_JSON, "User-Agent": self._user_agent, **(headers or {})}
            if token:
                request_headers["Authorization"] = f"Bearer {token}"
            if data is not None:
                request_headers["Content-Type"] = f"{FHIR_JSON}; charset=utf-8"
                request_headers["Prefer"] = "return=representation"
            request = {"method": method, "url": url, "params": params, "data": data, "headers": request_headers}
            response, attempts = self._sender.send(
                lambda: request, op=op, url_path=url_path, idempotent=idempotent, prior_attempts=attempts
            )
            if response.status_code in (401, 403) and token and not refreshed:
                logger.warning(
                    "EHR refused the token; refreshing it once",
                    extra={"ehr_op": op, "status": response.status_code, "attempt": attempts},
                )
                self._auth.invalidate()
                self.stats.token_refreshes += 1
                refreshed = True
                continue
            break
        status = response.status_code
        if 200 <= status < 300:
            return response, attempts, url_path
        where = {"status": status, "url_path": url_path, "attempts": attempts}
        if status in (401, 403):
            after = " after a token refresh" if refreshed else ""
            raise EhrAuthFailed(f"{op}: the EHR refused the credentials{after}", **where)
        outcome = outcome_summary(_maybe_json(response))
        said = f": {outcome}" if outcome else ""
        if status == 410:
            raise ResourceGone(f"{op}: the resource is gone{said}", **where)
        if status in (409, 412):
            current = etag_version(response.headers.get("ETag"))
            raise EhrConflict(
                f"{op}: version conflict{said}", current_version=current, outcome=outcome, **where
            )
        if is_retryable_status(status):  # only a create gets here: not retried, it may have been acted on
            raise EhrUnavailable(f"{op}: the EHR failed; not retried, it may have acted on it{said}", **where)
        if 300 <= status < 400:
            raise EhrRejected(f"{op}: the EHR redirected; redirects are not followed", **where)
        if 400 <= status < 600:
            raise EhrRejected(f"{op}: the EHR rejected the request{said}", outcome=outcome, **where)
        raise InvalidResponse(f"{op}: unexpected HTTP status", **where)

    def _write_result(
        self, response: requests.Response, resource_type: str, *, op: str, url_path: str, attempts: int
    ) -> WriteResult:
        body = json_body(response, op=op, url_path=url_path, attempts=attempts) if response.content else None
        resource = body if isinstance(body, dict) and body.get("resourceType") == resource_type else None
        location = response.headers.get("Location") or response.headers.get("Content-Location") or ""
        match = re.search(rf"(?:^|/){resource_type}/([A-Za-z0-9\-.]{{1,64}})(?:/_history/([^/?#]+))?", location)
        loc_id, loc_version = (match.group(1), match.group(2)) if match else (None, None)
        meta = resource.get("meta") if resource and isinstance(resource.get("meta"), dict) else {}
        return WriteResult(
            status=response.status_code,
            resource=resource,
            id=(resource or {}).get("id") or loc_id,
            version_id=meta.get("versionId") or loc_version or etag_version(response.headers.get("ETag")),
            last_updated=meta.get("lastUpdated") or _http_date_iso(response.headers.get("Last-Modified")),
        )

    def _same_origin(self, next_url: str) -> str:
        def refuse(why: str, path: str | None = None) -> OffOriginLink:
            return OffOriginLink(f"follow: the next link {why}; not fetched", url_path=path)

        if not isinstance(next_url, str) or not next_url.strip():
            raise refuse("is empty")
        target = urlsplit(urljoin(self.base_url + "/", next_url.strip()))
        base = self._base
        if target.scheme != base.scheme:
            raise refuse("uses another scheme than the base URL", target.path)
        if target.hostname != base.hostname:
            raise refuse("points to another host than the base URL", target.path)
        try:
            port = target.port or _default_port(target.scheme)
        except ValueError:
            raise refuse("has an invalid port", target.path) from None
        if port != (base.port or _default_port(base.scheme)):
            raise refuse("points to another port than the base URL", target.path)
        if target.username is not None or target.password is not None:
            raise refuse("carries credentials", target.path)
        base_path = base.path.rstrip("/")
        segments = unquote(target.path).split("/")
        if "." in segments or ".." in segments:
            raise refuse("has dot segments in its path", target.path)
        if base_path and target.path != base_path and not target.path.startswith(base_path + "/"):
            raise refuse("is outside the base URL's path", target.path)
        return urlunsplit(target._replace(fragment=""))


def _check_type(resource_type: str) -> None:
    if not isinstance(resource_type, str) or not _RESOURCE_TYPE.match(resource_type):
        raise ValueError("resource_type must be a FHIR resource type name such as 'Patient'")


def _check_id(resource_id: str) -> None:
    if not isinstance(resource_id, str) or not _FHIR_ID.match(resource_id):
        raise ValueError("resource id must be 1-64 characters of [A-Za-z0-9.-]")


def _maybe_json(response: requests.Response) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except ValueError:
        return None


def _kind(body: Any) -> str:
    if isinstance(body, dict):
        kind = body.get("resourceType")
        return repr(kind) if isinstance(kind, str) and _RESOURCE_TYPE.match(kind) else "an object without resourceType"
    return f"a JSON {type(body).__name__}"
