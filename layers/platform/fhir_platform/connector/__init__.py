"""The EHR connector: how the platform talks to a workspace's EHR (any FHIR R4 server).

- :mod:`~fhir_platform.connector.http` — :class:`EhrClient`, the one object that owns timeouts, the
  retry policy (429 ``Retry-After``, 5xx and network errors with jittered backoff), token refresh and
  the same-origin rule for ``next`` links. Callers ask for a Bundle, a resource or a write and get it
  back, or one typed :class:`EhrError`.
- :mod:`~fhir_platform.connector.auth` — token providers: none, a static bearer token from Secrets
  Manager, and SMART Backend Services (client credentials with a signed JWT assertion), built from a
  data source's ``auth`` configuration by :func:`token_provider`.

Still to come here: the inbound poll (page → write path → checkpoint), the scheduler's "what is due"
rules and the outbound writer. This package speaks HTTP to EHRs only; it never imports boto3 (the
default secret reader imports Powertools' parameters lazily, at the edge).
"""
