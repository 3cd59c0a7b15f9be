"""The OpenAPI document and its reference page: Swagger UI served from the swagger-ui-bundle package, so the
reference works offline (field offices often are), with every operation's schemas, examples and "Try it out"."""

from flask import Blueprint, Response, current_app, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from api import spec
from api.spec import operation

bp = Blueprint("docs", __name__, url_prefix="/api/v1")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css"></head>
<body><div id="reference"><noscript>The reference needs JavaScript; the document itself is at
<a href="openapi.json">openapi.json</a>.</noscript></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{url: "openapi.json", dom_id: "#reference", deepLinking: true,
  docExpansion: "list", defaultModelsExpandDepth: 0, persistAuthorization: true}});
</script></body></html>"""


@bp.get("/openapi.json")
@operation("This API's OpenAPI 3.1 document, generated from the routes' declarations", tag="service")
def openapi_json():
    return spec.document(current_app)


@bp.get("/docs")
@operation("The API reference (Swagger UI, works offline)", produces="text/html", tag="service")
def docs_page():
    return Response(PAGE.format(title=spec.TITLE), mimetype="text/html")


@bp.get("/docs/assets/<path:filename>")
@operation("The reference page's scripts and styles", produces="application/octet-stream", tag="service")
def docs_asset(filename):
    return send_from_directory(swagger_ui_path, filename, max_age=86400)
