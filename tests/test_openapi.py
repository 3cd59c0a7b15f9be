"""The OpenAPI document describes every route, and the docs page renders it."""

import re

from openapi_spec_validator import validate


def test_openapi_is_valid_31_and_covers_every_route(app, client):
    doc = client.get("/api/v1/openapi.json").get_json()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        if not (path.startswith("/api/v1/") or path in ("/healthz", "/readyz")) or path.startswith("/api/v1/openapi") or path == "/api/v1/docs":
            continue
        documented = doc["paths"].get(path)
        assert documented is not None, f"{path} is not in the OpenAPI document"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in documented, f"{method} {path} is not in the OpenAPI document"


def test_docs_page_renders_the_document(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert b'fetch("openapi.json")' in page.data
