"""S3 and SQS for imports: presigned uploads, reading uploaded objects as streams, staging chunks,
and fanning chunk pointers out through the import queue."""

from __future__ import annotations

from typing import Any, BinaryIO

from fhir_platform import aws, config

UPLOAD_URL_SECONDS = 3600


class ImportFiles:
    def __init__(self, s3: Any | None = None, sqs: Any | None = None) -> None:
        self._s3, self._sqs = s3, sqs

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = aws.client("s3")
        return self._s3

    @property
    def sqs(self) -> Any:
        if self._sqs is None:
            self._sqs = aws.client("sqs")
        return self._sqs

    @property
    def bucket(self) -> str:
        return config.imports_bucket()

    def upload_url(self, key: str) -> str:
        """A presigned PUT that signs only the host, so a plain ``curl -T file "$url"`` is valid: no
        Content-Type (the format is the key's extension) and no encryption headers (the bucket's
        default encryption applies to every object)."""
        return self.s3.generate_presigned_url("put_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=UPLOAD_URL_SECONDS)

    def describe(self, bucket: str, key: str, version_id: str | None = None) -> dict[str, Any]:
        """The object's ETag, version, metadata and size: of ``version_id`` when given, else the key's latest."""
        head = self.s3.head_object(Bucket=bucket, Key=key, **({"VersionId": version_id} if version_id else {}))
        return {"etag": head["ETag"], "version_id": head.get("VersionId"), "metadata": head.get("Metadata", {}), "size": head["ContentLength"]}

    def open(self, bucket: str, key: str, etag: str, version_id: str | None = None) -> BinaryIO:
        """A fresh stream of exactly this object version (its version id, else If-Match pins the ETag
        across reads)."""
        pin = {"VersionId": version_id} if version_id else {"IfMatch": etag}
        return self.s3.get_object(Bucket=bucket, Key=key, **pin)["Body"]

    def stage(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/fhir+ndjson")

    def read(self, bucket: str, key: str) -> bytes:
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def send(self, bodies: list[str]) -> None:
        """Send messages in batches of 10, retrying any the queue did not accept."""
        queue = config.import_queue_url()
        for start in range(0, len(bodies), 10):
            batch = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])]
            for _ in range(5):
                failed = self.sqs.send_message_batch(QueueUrl=queue, Entries=batch).get("Failed", [])
                if not failed:
                    break
                ids = {f["Id"] for f in failed}
                batch = [e for e in batch if e["Id"] in ids]
            else:
                raise RuntimeError(f"{len(batch)} import chunk messages were not accepted by the queue")
