"""Runtime configuration, read from the environment once per execution environment.

Required settings have no defaults: a function deployed without them fails at its first request
with a message naming the variable, never by silently writing to a default table.

============================  ==========================================================
variable                      meaning
============================  ==========================================================
``TABLE_NAME``                the DynamoDB data table (events, resources, index, keys)
``IMPORTS_BUCKET``            S3 bucket for import uploads and oversized resources
``IMPORT_QUEUE_URL``          SQS queue the bundle splitter fans chunks out to
``ADMIN_KEY_SECRET_ARN``      Secrets Manager secret holding the platform admin key
``MAX_REQUEST_BYTES``         request-body cap for JSON endpoints (default 4 MiB)
``DEFAULT_PHONE_REGION``      region (ISO 3166-1 alpha-2) of phone numbers written without a
                              country code, for E.164 rendering and phone search (default ``US``)
``AWS_ENDPOINT_URL``          optional: any AWS-compatible endpoint (moto locally)
============================  ==========================================================
"""

from __future__ import annotations

import os
from functools import lru_cache


class ConfigurationError(RuntimeError):
    """A required environment variable is missing."""


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigurationError(f"Environment variable {name} is required but not set")
    return value


def table_name() -> str:
    return _required("TABLE_NAME")


def imports_bucket() -> str:
    return _required("IMPORTS_BUCKET")


def import_queue_url() -> str:
    return _required("IMPORT_QUEUE_URL")


def admin_key_secret_arn() -> str:
    return _required("ADMIN_KEY_SECRET_ARN")


@lru_cache(maxsize=1)
def max_request_bytes() -> int:
    return int(os.environ.get("MAX_REQUEST_BYTES", str(4 * 1024 * 1024)))


DEFAULT_PHONE_REGION = "US"


@lru_cache(maxsize=1)
def default_phone_region() -> str:
    """Where a phone number without a country code is (``555-588-7087`` → ``+15555887087`` in ``US``).

    Phone search keys depend on it for such numbers: changing it on a table with data needs a
    re-index (see ``docs/search.md``)."""
    import phonenumbers

    value = os.environ.get("DEFAULT_PHONE_REGION", "").strip().upper() or DEFAULT_PHONE_REGION
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigurationError(
            f"Environment variable DEFAULT_PHONE_REGION={value[:10]!r} is not a region code libphonenumber knows "
            "(ISO 3166-1 alpha-2, e.g. US, GB, CA)"
        )
    return value
