"""AWS clients, created once per execution environment (never per request).

boto3 honours ``AWS_ENDPOINT_URL`` itself, so the same code talks to AWS, to moto's server, or to
any AWS-compatible endpoint. Tests inject their own clients through the repositories' constructors
or call :func:`reset` inside ``moto.mock_aws``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=3, read_timeout=10)
# S3 always signs with SigV4: botocore would otherwise presign URLs with the deprecated SigV2 in
# us-east-1, which S3 refuses for buckets encrypted with KMS (the imports bucket is).
_SERVICE_CONFIG = {"s3": _CONFIG.merge(Config(signature_version="s3v4"))}


@lru_cache(maxsize=None)
def client(service: str) -> Any:
    return boto3.session.Session().client(service, config=_SERVICE_CONFIG.get(service, _CONFIG))


@lru_cache(maxsize=None)
def dynamodb_table(name: str) -> Any:
    return boto3.session.Session().resource("dynamodb", config=_CONFIG).Table(name)


def reset() -> None:
    """Forget cached clients (tests switch endpoints between runs)."""
    client.cache_clear()
    dynamodb_table.cache_clear()
