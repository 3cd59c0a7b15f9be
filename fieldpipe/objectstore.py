"""Object storage: one small interface over an S3 bucket, reached through the amazon provider's S3Hook.

The bucket's client comes from the Airflow connection `aws_default` (an `AIRFLOW_CONN_AWS_DEFAULT`
environment variable or any Airflow secrets backend), so the API, the DAGs and the CLI share one
configuration: under `make up` and in the tests it points at moto's S3-compatible server on loopback,
in production at S3 itself. Keys are built by callers from ids they own (never from a device's file
name alone), so one organization's object can neither collide with nor escape into another's prefix.

    store = default_store()
    store.put("acme/household-survey/incoming/march.csv", data)
    for info in store.list("acme/household-survey/incoming/"):
        with store.open(info.key) as body:
            ...
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Iterator

from fieldpipe.config import Settings
from fieldpipe.pipelines.names import AWS_CONN



@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: datetime


class ObjectStore:
    """One bucket. Every method takes a full key; prefixes are the caller's business."""

    def __init__(self, client, bucket: str):
        self._client = client
        self.bucket = bucket

    def ensure_bucket(self) -> "ObjectStore":
        from botocore.exceptions import ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise
            self._client.create_bucket(Bucket=self.bucket)
        return self

    def put(self, key: str, data: bytes | IO[bytes], content_type: str | None = None) -> None:
        """Write `data` (bytes, or a binary file read in parts by boto3's multipart upload) at `key`."""
        extra = {"ContentType": content_type} if content_type else {}
        if isinstance(data, (bytes, bytearray)):
            self._client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data), **extra)
        else:
            self._client.upload_fileobj(data, self.bucket, key, ExtraArgs=extra or None)

    def get(self, key: str) -> bytes:
        with self.open(key) as body:
            return body.read()

    def open(self, key: str) -> IO[bytes]:
        """A streaming, closable binary reader of the object: read it in parts, never whole."""
        return self._client.get_object(Bucket=self.bucket, Key=key)["Body"]

    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        try:
            meta = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(key, meta["ContentLength"], meta["ETag"].strip('"'), meta["LastModified"])

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under `prefix`, in key order, page by page."""
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield ObjectInfo(item["Key"], item["Size"], item["ETag"].strip('"'), item["LastModified"])

    def move(self, src_key: str, dst_key: str) -> None:
        """Copy then delete: S3 has no rename. A crash between the two leaves both, never neither."""
        self._client.copy({"Bucket": self.bucket, "Key": src_key}, self.bucket, dst_key)
        self.delete(src_key)

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=key)

    def url(self, key: str, expires: int = 900) -> str:
        """A presigned GET URL valid for `expires` seconds: for handing a file to someone without a key."""
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires)


@functools.lru_cache(maxsize=4)
def _store(bucket: str, conn_id: str) -> ObjectStore:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return ObjectStore(S3Hook(aws_conn_id=conn_id).get_conn(), bucket).ensure_bucket()


def default_store() -> ObjectStore:
    """The project's bucket (`FIELDPIPE_BUCKET`, default "fieldpipe"), created on first use.

    The client is built once per process and bucket: making one costs tens of milliseconds.
    """
    return _store(Settings.from_env().bucket, AWS_CONN)


def forget_clients() -> None:
    """Drop cached clients, for when the connection behind `aws_default` changes (tests do this)."""
    _store.cache_clear()
