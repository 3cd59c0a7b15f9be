"""The OpenAPI document and a page that renders it (no CDN: field offices are often offline)."""

from flask import Blueprint, Response

from api.openapi import document

bp = Blueprint("docs", __name__, url_prefix="/api/v1")

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fieldpipe API</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
.op{border:1px solid #ddd;border-radius:6px;margin:.6rem 0;padding:.5rem .8rem}
.m{display:inline-block;min-width:4rem;font-weight:bold;text-transform:uppercase}
.get{color:#0a6}.post{color:#06c}.put{color:#b70}.delete{color:#c22}
code{background:#f4f4f4;padding:0 .25rem}small{color:#666}
</style></head>
<body><h1 id="title">fieldpipe API</h1><p id="desc"></p><div id="ops">Loading openapi.json…</div>
<script>
fetch("openapi.json").then(r => r.json()).then(doc => {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  document.getElementById("desc").textContent = doc.info.description;
  const ops = document.getElementById("ops"); ops.textContent = "";
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const div = document.createElement("div"); div.className = "op";
      const params = (op.parameters || []).map(p => p.name + " (" + p.in + ")").join(", ");
      const codes = Object.keys(op.responses || {}).join(" ");
      div.innerHTML = '<span class="m ' + method + '">' + method + '</span> <code></code><div></div><small></small>';
      div.querySelector("code").textContent = path;
      div.querySelector("div").textContent = op.summary + (op.description ? " " + op.description : "");
      div.querySelector("small").textContent = (params ? "parameters: " + params + " · " : "") + "responses: " + codes;
      ops.appendChild(div);
    }
  }
});
</script></body></html>"""


@bp.get("/openapi.json")
def openapi_json():
    return document()


@bp.get("/docs")
def docs_page():
    return Response(DOCS_PAGE, mimetype="text/html")
