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


@lru_cache(maxsize=None)
def dynamodb_writer(region_name: str | None = None, endpoint_url: str | None = None) -> Any:
    """The write path's low-level DynamoDB client: botocore parameter validation off, because every
    request it sends is built by :mod:`fhir_platform.storage.wire`, which guarantees the shapes (and
    costs a fraction of validation plus boto3's resource layer, which deep-copies and re-walks each
    request); its transactions' bodies are the JSON text that module writes
    (:func:`~fhir_platform.storage.wire.transact_items`, sent by
    :class:`~fhir_platform.storage.wire.WireRequests`) and their endpoint is resolved without a
    JMESPath search over every operation (:class:`~fhir_platform.storage.wire.WireEndpoints`). Only ``storage.resources`` writes through it. ``region_name``/``endpoint_url``: those
    of an injected table (tests), else the environment's."""
    from fhir_platform.storage.wire import WireEndpoints, WireRequests

    config = _CONFIG.merge(Config(parameter_validation=False))
    writer = boto3.session.Session().client("dynamodb", region_name=region_name, endpoint_url=endpoint_url, config=config)
    writer._serializer = WireRequests(writer._serializer)  # botocore wraps its serializer the same way
    if writer._ruleset_resolver is not None:
        writer._ruleset_resolver = WireEndpoints(writer._ruleset_resolver)
    return writer


def reset() -> None:
    """Forget cached clients (tests switch endpoints between runs)."""
    client.cache_clear()
    dynamodb_table.cache_clear()
    dynamodb_writer.cache_clear()
