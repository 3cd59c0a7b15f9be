"""Object storage through the amazon provider's S3 client against moto's S3-compatible server."""

from __future__ import annotations

import io
import urllib.request

from fieldpipe import objectstore


def test_put_get_head_list_move_delete(object_store):
    object_store.put("acme/survey/incoming/b.csv", b"id,x\n1,2\n", content_type="text/csv")
    object_store.put("acme/survey/incoming/a.csv", io.BytesIO(b"a" * 100_000))
    object_store.put("rival/survey/incoming/c.csv", b"not yours")

    assert object_store.get("acme/survey/incoming/b.csv") == b"id,x\n1,2\n"
    with object_store.open("acme/survey/incoming/a.csv") as body:
        assert body.read(10) == b"a" * 10
    info = object_store.head("acme/survey/incoming/a.csv")
    assert info.size == 100_000 and info.etag
    assert object_store.head("acme/survey/incoming/missing.csv") is None
    assert [i.key for i in object_store.list("acme/")] == ["acme/survey/incoming/a.csv", "acme/survey/incoming/b.csv"]

    object_store.move("acme/survey/incoming/b.csv", "acme/survey/processed/b.csv")
    assert object_store.head("acme/survey/incoming/b.csv") is None
    assert object_store.get("acme/survey/processed/b.csv") == b"id,x\n1,2\n"

    object_store.delete("acme/survey/processed/b.csv")
    assert [i.key for i in object_store.list("acme/survey/processed/")] == []


def test_presigned_url_serves_the_object_over_http(object_store):
    object_store.put("acme/slc/1.pdf", b"%PDF-1.4 test")
    with urllib.request.urlopen(object_store.url("acme/slc/1.pdf", expires=60)) as resp:
        assert resp.read() == b"%PDF-1.4 test"


def test_default_store_creates_its_bucket_once_and_reuses_the_client(object_store):
    assert objectstore.default_store() is object_store
    assert object_store.bucket.startswith("test-")
    assert list(object_store.list("")) == []
