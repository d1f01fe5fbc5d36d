"""JSON responses of the service: bodies encoded with msgspec, errors as ``{"error", "detail"}``."""

from __future__ import annotations

from typing import Any, Final

import msgspec
import pydantic
from starlette.responses import Response

__all__ = ["JSON_MEDIA_TYPE", "encode_json", "error_response", "json_response", "validation_detail"]

JSON_MEDIA_TYPE: Final = "application/json"

encode_json = msgspec.json.Encoder().encode
"""Any JSON-ready value → bytes (msgspec; NaN and ±Infinity become ``null``)."""


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``data`` as a JSON response."""
    return Response(encode_json(data), status_code=status, media_type=JSON_MEDIA_TYPE, headers=headers)


def error_response(status: int, message: str, detail: Any = None) -> Response:
    """``{"error": message}`` (plus ``"detail"`` when given) with ``status``."""
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return json_response(body, status)


def validation_detail(error: pydantic.ValidationError) -> list[dict[str, Any]]:
    """A request body's validation errors as ``[{"loc", "msg", "type"}]`` (no input echoed back)."""
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in error.errors(include_url=False, include_context=False, include_input=False)
    ]
