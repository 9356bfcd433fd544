"""The presigned upload URL is valid for a plain PUT (``curl -T file "$url"``): checked with an
independent SigV4 verifier, because moto does not verify SigV4 presigned signatures."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from fhir_platform import aws
from fhir_platform.storage.import_files import UPLOAD_URL_SECONDS, ImportFiles

SECRET = "unit-test-secret"


def s3_accepts(url: str, method: str, headers: dict[str, str], secret: str = SECRET) -> bool:
    """What S3 checks for a SigV4 query-signed request: every signed header is sent, and the
    signature over the canonical request (as actually sent) matches."""
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        return False
    signature = params.pop("X-Amz-Signature")
    signed = params["X-Amz-SignedHeaders"].split(";")
    sent = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
    if any(name not in sent for name in signed):
        return False
    enc = lambda v: quote(v, safe="-_.~")  # noqa: E731
    canonical = "\n".join(
        [
            method,
            parts.path,
            "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(params.items())),
            "".join(f"{name}:{sent[name]}\n" for name in signed),
            ";".join(signed),
            "UNSIGNED-PAYLOAD",
        ]
    )
    scope = params["X-Amz-Credential"].split("/", 1)[1]
    to_sign = "\n".join(["AWS4-HMAC-SHA256", params["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), signature)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "AKIDUNITTEST",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_SESSION_TOKEN": "session-token",
        "AWS_DEFAULT_REGION": "us-east-1",
        "IMPORTS_BUCKET": "fhir-imports",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    aws.reset()
    yield aws.client("s3")
    aws.reset()


def test_upload_url_is_valid_for_a_put_without_headers(s3) -> None:
    url = ImportFiles(s3=aws.client("s3")).upload_url("imports/ws-1/job-1.ndjson")
    host = urlsplit(url).netloc
    params = dict(parse_qsl(urlsplit(url).query))
    assert params["X-Amz-SignedHeaders"] == "host" and params["X-Amz-Expires"] == str(UPLOAD_URL_SECONDS)
    assert s3_accepts(url, "PUT", {"Host": host})
    # an uploader may still send a Content-Type: unsigned headers do not void the signature
    assert s3_accepts(url, "PUT", {"Host": host, "Content-Type": "application/fhir+ndjson"})
    assert not s3_accepts(url, "GET", {"Host": host})


def test_the_verifier_refuses_what_s3_refuses(s3) -> None:
    """Guards the verifier itself: a URL that signs a Content-Type (the old URL) needs that header."""
    url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": "fhir-imports", "Key": "k", "ContentType": "application/fhir+ndjson"}, ExpiresIn=60
    )
    host = urlsplit(url).netloc
    assert not s3_accepts(url, "PUT", {"Host": host})
    assert s3_accepts(url, "PUT", {"Host": host, "Content-Type": "application/fhir+ndjson"})
    assert not s3_accepts(url, "PUT", {"Host": host, "Content-Type": "text/plain"})
    assert not s3_accepts(url, "PUT", {"Host": host, "Content-Type": "application/fhir+ndjson"}, secret="other")
