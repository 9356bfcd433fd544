"""The EHR connector: how the platform talks to a workspace's EHR (any FHIR R4 server).

- :mod:`~fhir_platform.connector.config` — a FHIR data source's ``connection_config`` (pydantic;
  secrets by Secrets Manager ARN only).
- :mod:`~fhir_platform.connector.http` — :class:`EhrClient`, the one object that owns timeouts, the
  retry policy (429 ``Retry-After``, 5xx and network errors with jittered backoff), token refresh and
  the same-origin rule for ``next`` links. Callers ask for a Bundle, a resource or a write and get it
  back, or one typed :class:`EhrError`.
- :mod:`~fhir_platform.connector.auth` — token providers: none, a static bearer token from Secrets
  Manager, and SMART Backend Services (client credentials with a signed JWT assertion), built from a
  data source's ``auth`` configuration by :func:`token_provider`.
- :mod:`~fhir_platform.connector.schedule` — pure rules: EventBridge ``rate``/``cron``, per-type
  cadence, business hours, which types are due and when a source is next due.
- :mod:`~fhir_platform.connector.sources` — data sources: validation, health, manual trigger.
- :mod:`~fhir_platform.connector.scheduler` — the every-minute run over due entries.
- :mod:`~fhir_platform.connector.inbound` — one poll: lease → pages → write path → checkpoint.
- :mod:`~fhir_platform.connector.handlers` — the Lambda event handlers over the above.

Only ``storage/`` talks to AWS; the HTTP client and the schedule rules import no boto3 (the default
secret reader imports Powertools' parameters lazily, at the edge).
"""
