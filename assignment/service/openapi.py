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


_OFREP_FAILURE = {
    "type": "object",
    "properties": {
        "key": {"type": "string"},
        "errorCode": {
            "type": "string",
            "enum": ["PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL", "FLAG_NOT_FOUND"],
        },
        "errorDetails": {"type": "string"},
    },
    "required": ["errorCode"],
}
_OFREP_SUCCESS = {
    "type": "object",
    "properties": {
        "key": {"type": "string"},
        "value": {},
        "reason": {"type": "string", "enum": ["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "DEFAULT"]},
        "variant": {"type": "string"},
        "metadata": {"type": "object"},
    },
    "required": ["key", "reason", "variant"],
}
_OFREP_REQUEST = {
    "type": "object",
    "properties": {
        "context": {
            "type": "object",
            "properties": {"targetingKey": {"type": "string", "minLength": 1}},
            "description": "The unit's attributes; targetingKey is the unit id (the hash attribute).",
        }
    },
}
_PATH_KEY = {"name": "client_key", "in": "path", "required": True, "schema": {"type": "string"}}


def _sdk_paths() -> dict[str, Any]:
    """OFREP, GrowthBook remote evaluation and the event stream (docs/clients.md)."""
    ofrep_security: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}, {"xpKey": []}]
    auth = {"401": {"description": "No valid client key."}}
    return {
        "/ofrep/v1/evaluate/flags/{key}": {
            "post": {
                "summary": "OpenFeature OFREP: one flag for one evaluation context",
                "security": ofrep_security,
                "parameters": [{"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _OFREP_REQUEST}},
                },
                "responses": {
                    "200": _json(_OFREP_SUCCESS, "The flag's value"),
                    "400": _json(_OFREP_FAILURE, "PARSE_ERROR, INVALID_CONTEXT or TARGETING_KEY_MISSING"),
                    "404": _json(_OFREP_FAILURE, "FLAG_NOT_FOUND"),
                    "415": _json(_ERROR, "The body is not sent as Content-Type: application/json."),
                    **auth,
                },
            }
        },
        "/ofrep/v1/evaluate/flags": {
            "post": {
                "summary": "OpenFeature OFREP: every flag for one evaluation context (ETag)",
                "security": ofrep_security,
                "parameters": [
                    {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}}
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _OFREP_REQUEST}},
                },
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "flags": {
                                    "type": "array",
                                    "items": {"anyOf": [_OFREP_SUCCESS, _OFREP_FAILURE]},
                                },
                                "metadata": {"type": "object"},
                                "eventStreams": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {"type": {"const": "sse"}, "url": {"type": "string"}},
                                    },
                                },
                            },
                            "required": ["flags"],
                        },
                        "Every flag's value",
                    ),
                    "304": {"description": "Not modified (If-None-Match matched the ETag)."},
                    "400": _json(_OFREP_FAILURE, "PARSE_ERROR or INVALID_CONTEXT"),
                    "415": _json(_ERROR, "The body is not sent as Content-Type: application/json."),
                    **auth,
                },
            }
        },
        "/api/eval/{client_key}": {
            "post": {
                "summary": "GrowthBook remote evaluation: the unit's evaluated features payload",
                "parameters": [_PATH_KEY],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "attributes": {"type": "object"},
                                    "forcedVariations": {
                                        "type": "object",
                                        "additionalProperties": {"type": "integer", "minimum": 0},
                                    },
                                    "forcedFeatures": {"type": "array", "items": {"type": "array"}},
                                    "url": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"features": {"type": "object"}, "dateUpdated": {"type": "string"}},
                            "required": ["features"],
                        },
                        "GrowthBook SDKEndpointResponse (evaluated)",
                    ),
                    "401": _json(_ERROR, "Unknown client key."),
                    "403": _json(_ERROR, "An admin key in the URL."),
                    "415": _json(_ERROR, "The body is not sent as Content-Type: application/json."),
                    "422": _json(_ERROR, "The body is not a remote-evaluation request."),
                },
            }
        },
        "/sub/{client_key}": {
            "get": {
                "summary": "Server-sent events on every payload change (GrowthBook features-updated / "
                "features with ?payload=inline; OFREP refetchEvaluation)",
                "parameters": [
                    _PATH_KEY,
                    {
                        "name": "payload",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["inline"]},
                    },
                ],
                "responses": {
                    "200": {"description": "text/event-stream (never ends)"},
                    "401": _json(_ERROR, "Unknown client key."),
                    "403": _json(_ERROR, "An admin key in the URL."),
                    "503": _json(_ERROR, "Too many open streams (XP_SERVICE_MAX_STREAMS)."),
                },
            }
        },
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
        **_sdk_paths(),
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
            "description": (
                "Assignments, GrowthBook SDK payload, remote evaluation and event stream, OpenFeature OFREP, "
                "event collector. See docs/service.md and docs/clients.md."
            ),
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A client or admin key."},
                "xpKey": {"type": "apiKey", "in": "header", "name": "X-XP-Key"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "OFREP"},
            },
        },
        "paths": paths,
    }
