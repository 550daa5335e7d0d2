"""The OpenAPI document, and `/docs`: Swagger UI from the `swagger-ui-bundle` package, served offline.

Swagger UI (the Swagger project's own renderer, resolving `$ref`s, showing schemas, examples and a
"try it out" form) is shipped in the `swagger-ui-bundle` wheel; the gateway serves its files itself,
so the page needs no CDN and no network. That bundle is Swagger UI 4, which renders OpenAPI 3.0 but not
3.1; our contract (`/openapi.json`, schemas/openapi.json) is 3.1, so the UI is handed a 3.0 view of
it (`as_openapi_30`): the same paths and schemas, with 3.1's `anyOf [X, null]` written as 3.0's
`nullable` and numeric `exclusiveMinimum` as a `minimum` with a flag. `/openapi.json` stays the contract."""

from __future__ import annotations

import copy
from functools import cache
from html import escape
from pathlib import Path

from swagger_ui_bundle import swagger_ui_path

from service.contract.openapi import openapi_document as _build

# the files of the bundle the page loads; nothing else of the package is served
ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui-standalone-preset.js": "application/javascript",
    "favicon-32x32.png": "image/png",
}
ASSET_ROOT = "/docs/assets/"
SPEC_30 = "/docs/openapi-3.0.json"
INIT = "/docs/init.js"


@cache
def openapi_document() -> dict:
    return _build()


@cache
def openapi_30() -> dict:
    return as_openapi_30(openapi_document())


def asset(name: str) -> tuple[bytes, str] | None:
    """(content, media type) of one Swagger UI file, or None when the name is not one the page uses."""
    media = ASSETS.get(name)
    if media is None:
        return None
    return (Path(swagger_ui_path) / name).read_bytes(), media


def render_docs(document: dict) -> str:
    """The Swagger UI page: the bundle's CSS and scripts from this server, the spec from SPEC_30."""
    title = escape(document["info"]["title"])
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title>"
        f"<link rel='stylesheet' href='{ASSET_ROOT}swagger-ui.css'>"
        f"<link rel='icon' type='image/png' href='{ASSET_ROOT}favicon-32x32.png'>"
        "</head><body><div id='swagger-ui'></div>"
        f"<script src='{ASSET_ROOT}swagger-ui-bundle.js'></script>"
        f"<script src='{ASSET_ROOT}swagger-ui-standalone-preset.js'></script>"
        f"<script src='{INIT}'></script>"
        f"<noscript><h1>{title}</h1><p>This page needs JavaScript; the OpenAPI document itself is at "
        "<a href='/openapi.json'>/openapi.json</a>.</p></noscript>"
        "</body></html>\n"
    )


INIT_SCRIPT = (
    "window.onload = function () {\n"
    "  window.ui = SwaggerUIBundle({\n"
    f"    url: '{SPEC_30}', dom_id: '#swagger-ui', deepLinking: true,\n"
    "    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],\n"
    "    layout: 'StandaloneLayout', defaultModelsExpandDepth: 1, validatorUrl: null\n"
    "  });\n"
    "};\n"
)


def as_openapi_30(document: dict) -> dict:
    """The 3.1 document as OpenAPI 3.0.3, for a renderer that reads 3.0 only."""
    converted = _to_30(copy.deepcopy(document))
    converted["openapi"] = "3.0.3"
    return converted


def _to_30(node):
    if isinstance(node, list):
        return [_to_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _to_30(value) for key, value in node.items()}
    variants = node.get("anyOf")
    if isinstance(variants, list) and {"type": "null"} in variants:
        rest = [v for v in variants if v != {"type": "null"}]
        del node["anyOf"]
        if len(rest) == 1 and "$ref" not in rest[0]:
            node.update(rest[0])
        elif len(rest) == 1:
            node["allOf"] = rest  # 3.0: `nullable` does not apply beside a bare $ref
        else:
            node["anyOf"] = rest
        node["nullable"] = True
    if isinstance(node.get("exclusiveMinimum"), (int, float)) and not isinstance(node["exclusiveMinimum"], bool):
        node["minimum"], node["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if isinstance(node.get("exclusiveMaximum"), (int, float)) and not isinstance(node["exclusiveMaximum"], bool):
        node["maximum"], node["exclusiveMaximum"] = node["exclusiveMaximum"], True
    if isinstance(node.get("type"), list):  # 3.1 type arrays: the non-null one, nullable
        types = [t for t in node["type"] if t != "null"]
        if len(types) == 1:
            node["nullable"] = node.get("nullable", False) or "null" in node["type"]
            node["type"] = types[0]
    if "examples" in node and isinstance(node["examples"], list) and "example" not in node and "schema" not in node:
        examples = node.pop("examples")
        if examples:
            node["example"] = examples[0]
    return node
