"""The OpenAPI 3.1 document served at ``/openapi.json``: paths written here, bodies from pydantic."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from assignment.service import models

__all__ = ["openapi_document"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {}},
    "required": ["error"],
}
_AUTH_ERRORS = {
    "401": _json(_ERROR, "No valid key presented."),
    "403": _json(_ERROR, "The key may not do this (admin only)."),
}


def openapi_document(version: str) -> dict[str, Any]:
    """The whole document (plain data)."""
    _, defs = models_json_schema(
        [
            (m, "validation")
            for m in (
                models.AssignRequest,
                models.AssignResponse,
                models.AssignBatchRequest,
                models.AssignBatchResponse,
                models.EventsRequest,
                models.EventsResponse,
                models.OverrideRequest,
                models.OverrideResponse,
            )
        ],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = _ERROR
    client: list[dict[str, list[str]]] = [{"bearer": []}, {"xpKey": []}]
    unprocessable = {
        "415": _json(_ref("Error"), "The body is not sent as Content-Type: application/json."),
        "422": _json(_ref("Error"), "The body is not valid JSON or does not match the schema."),
    }

    def post(summary: str, request: str, response: str, code: str, *, admin: bool = False) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "security": client,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(request)}}},
                "responses": {
                    code: _json(_ref(response), "OK"),
                    **_AUTH_ERRORS,
                    **unprocessable,
                    **({"409": _json(_ref("Error"), "Not following the registry.")} if admin else {}),
                },
            }
        }

    paths: dict[str, Any] = {
        "/v1/assign": post(
            "Assignments of one unit (all or named features)", "AssignRequest", "AssignResponse", "200"
        ),
        "/v1/assign/batch": post(
            "Assignments of many units", "AssignBatchRequest", "AssignBatchResponse", "200"
        ),
        "/v1/events": post(
            "Collect exposures and metric events (each validated; valid ones produced to Kafka)",
            "EventsRequest",
            "EventsResponse",
            "202",
        ),
        "/v1/overrides": post(
            "Force a unit into a variation (admin; published to the registry)",
            "OverrideRequest",
            "OverrideResponse",
            "202",
            admin=True,
        ),
        "/v1/overrides/{experiment_key}/{unit_id}": {
            "delete": {
                "summary": "Remove an override (admin; published to the registry)",
                "security": client,
                "parameters": [
                    {"name": "experiment_key", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "unit_id", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {"202": _json(_ref("OverrideResponse"), "Published"), **_AUTH_ERRORS},
            }
        },
        "/api/features/{client_key}": {
            "get": {
                "summary": "GrowthBook SDK payload (SDK apiHost = this service, clientKey = a client key)",
                "parameters": [
                    {"name": "client_key", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "status": {"type": "integer", "const": 200},
                                "features": {"type": "object"},
                                "savedGroups": {"type": "object"},
                                "dateUpdated": {"type": "string", "format": "date-time"},
                            },
                            "required": ["status", "features"],
                        },
                        "GrowthBook SDKEndpointResponse",
                    ),
                    "304": {"description": "Not modified (If-None-Match matched the ETag)."},
                    "401": _json(_ref("Error"), "Unknown client key."),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness and state (payload version, sink)",
                "responses": {"200": {"description": "OK"}},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "text/plain; version=0.0.4"}},
            }
        },
        "/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "xpstream assignment service",
            "version": version,
            "description": "Assignments, GrowthBook SDK payload, event collector. See docs/service.md.",
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A client or admin key."},
                "xpKey": {"type": "apiKey", "in": "header", "name": "X-XP-Key"},
            },
        },
        "paths": paths,
    }
