"""Responses every operation of a kind can give, added to the OpenAPI schema once.

An operation with a path parameter answers 404 when the id names nothing (an unknown
site, camera, alert or promo), whether or not its route remembered to say so; schemathesis
checks that every status the API returns is documented, so the schema says it for all of
them, with the one error body the API uses.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA_REF = {"$ref": "#/components/schemas/ErrorResponse"}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def install_common_responses(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
                "ErrorResponse", ERROR_SCHEMA
            )
            for path, item in schema.get("paths", {}).items():
                for operation in item.values():
                    if "{" in path and isinstance(operation, dict):
                        operation.setdefault("responses", {}).setdefault(
                            "404",
                            {
                                "description": "Nothing with this id.",
                                "content": {"application/json": {"schema": ERROR_SCHEMA_REF}},
                            },
                        )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
