"""The OpenAPI document and an offline HTML page of it (no CDN, no script): served by the gateway."""

from __future__ import annotations

import json
from functools import cache
from html import escape

from service.contract.openapi import openapi_document as _build


@cache
def openapi_document() -> dict:
    return _build()


def render_docs(document: dict) -> str:
    """One self-contained page: every route with its parameters, body and answers, then the schemas."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{escape(document['info']['title'])}</title>",
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;line-height:1.4}"
        "code,pre{background:#f4f4f4;padding:.1rem .3rem}pre{padding:.6rem;overflow:auto}"
        ".m{font-weight:bold;text-transform:uppercase;margin-right:.5rem}</style></head><body>",
        f"<h1>{escape(document['info']['title'])}</h1><p>{escape(document['info']['description'])}</p>",
    ]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            parts.append(f"<h2><span class='m'>{escape(method)}</span><code>{escape(path)}</code></h2>")
            parts.append(f"<p><b>{escape(operation.get('summary', ''))}</b> {escape(operation.get('description', ''))}</p>")
            for parameter in operation.get("parameters", []):
                parts.append(f"<p>{escape(parameter['in'])} <code>{escape(parameter['name'])}</code>"
                             f"{' (required)' if parameter.get('required') else ''}</p>")
            body = operation.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                parts.append(f"<p>Body ({escape(media)}): <code>{escape(json.dumps(content['schema']))}</code></p>")
            parts.append("<ul>")
            for status, answer in operation["responses"].items():
                parts.append(f"<li><b>{escape(status)}</b> {escape(answer['description'])}</li>")
            parts.append("</ul>")
    parts.append("<h2>Schemas</h2>")
    for name, schema in document["components"]["schemas"].items():
        parts.append(f"<h3 id='{escape(name)}'>{escape(name)}</h3><pre>{escape(json.dumps(schema, indent=2))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
