"""The HTTP API's types: the request model built from a package's input schema, the response and error shapes.

`row_model` and `request_model` turn the predictor's `input_schema` (one InputField per raw field of a row of the
package's main table, dataset.table) into pydantic models, so the OpenAPI schema (and /docs) shows the real fields
with their types, ranges, allowed values and maximum lengths, and the same models check every request. The body is
`{"<table>": [row, ...]}`, keyed by the main table's name from the package's manifest. `check_rows` validates a
parsed body row by row and raises ApiError naming the row, the field and the rule of the first bad value. Pure: no
I/O, no FastAPI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, create_model
from pydantic import ValidationError as _ValidationError

SERVICE_TITLE = "flightdelay"


class InputFieldLike(Protocol):
    """What the service reads of `flightdelay.serving.predictor.InputField`."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...  # "integer" | "number" | "string"
    @property
    def nullable(self) -> bool: ...
    @property
    def minimum(self) -> float | None: ...
    @property
    def maximum(self) -> float | None: ...
    @property
    def allowed(self) -> tuple[str, ...] | None: ...
    @property
    def max_length(self) -> int | None: ...


@dataclass
class ApiError(Exception):
    """A request the service refuses with a defined 4xx (or 5xx for its own state) and the JSON error shape."""

    status: int
    code: str
    message: str
    field: str | None = None
    limit: int | float | None = None
    row: int | None = None
    rule: str | None = None
    headers: dict[str, str] | None = None  # response headers it needs (Retry-After of a 503 busy)

    def body(self, request_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        for key in ("field", "limit", "row", "rule"):
            if getattr(self, key) is not None:
                error[key] = getattr(self, key)
        return {"error": error, "request_id": request_id}


class ErrorDetail(BaseModel):
    code: str = Field(description="a stable machine-readable code, e.g. invalid_input, batch_too_large")
    message: str = Field(description="one line: what was wrong and how to fix it")
    field: str | None = Field(None, description="the input field at fault, when one is")
    limit: float | None = Field(None, description="the limit that was exceeded, when one was")
    row: int | None = Field(None, description="the index of the row at fault in the batch")
    rule: str | None = Field(None, description="the rule the value broke (pydantic's error type)")


class ErrorResponse(BaseModel):
    error: ErrorDetail
    request_id: str


class ModelRef(BaseModel):
    name: str = Field(description="model-<16 hex>, the package directory's name")
    hash: str = Field(description="the full SHA-256 of the package")
    version: str | None = Field(None, description="the package's version from its manifest")


class Prediction(BaseModel):
    probability: float = Field(ge=0, le=1, description="probability of class 1 (the package's dataset.target labels)")
    label: int = Field(ge=0, le=1, description="1 when probability >= the package's threshold, else 0")
    context_fallback: bool = Field(description="some context for this row was missing; the fallback was used")


class PredictResponse(BaseModel):
    request_id: str
    model: ModelRef
    predictions: list[Prediction]


def _field_type(field: InputFieldLike, max_string_length: int) -> Any:
    bounds: dict[str, Any] = {}
    whole = int if field.kind == "integer" else float  # an integer field's bounds shown as integers
    if field.minimum is not None:
        bounds["ge"] = whole(field.minimum)
    if field.maximum is not None:
        bounds["le"] = whole(field.maximum)
    if field.kind == "integer":
        annotated: Any = Annotated[StrictInt, Field(**bounds)]
    elif field.kind == "number":
        annotated = Annotated[StrictFloat, Field(allow_inf_nan=False, **bounds)]  # strict float takes JSON integers
    elif field.kind == "string" and field.allowed:
        annotated = Literal[tuple(field.allowed)]
    elif field.kind == "string":
        longest = min(field.max_length or max_string_length, max_string_length)
        shown = {"format": fmt} if (fmt := getattr(field, "format", None)) else None  # date-time: the predictor checks
        annotated = Annotated[StrictStr, Field(max_length=longest, json_schema_extra=shown)]
    else:
        raise ValueError(f"input field {field.name}: unknown kind {field.kind!r} (integer, number or string)")
    return annotated | None if field.nullable else annotated


def row_model(schema: list[InputFieldLike], max_string_length: int) -> type[BaseModel]:
    """One row as the caller sends it: the input schema's fields, no others; a nullable field may be left out."""
    fields: dict[str, Any] = {}
    for field in schema:
        kind = _field_type(field, max_string_length)
        default = None if field.nullable else ...
        fields[field.name] = (kind, Field(default, description=_describe(field)))
    return create_model(  # dynamic fields; pydantic checks them
        "Row", __config__=ConfigDict(extra="forbid", strict=True), **fields
    )


def request_model(row: type[BaseModel], max_batch: int, key: str) -> type[BaseModel]:
    """The /predict body: {key: [...]} (key: the main table's name) with 1 to max_batch rows (for the OpenAPI
    schema)."""
    items = Annotated[list[row], Field(min_length=1, max_length=max_batch)]  # type: ignore[valid-type]
    fields: dict[str, Any] = {key: (items, ...)}
    return create_model("PredictRequest", __config__=ConfigDict(extra="forbid"), **fields)


def _describe(field: InputFieldLike) -> str:
    parts = [field.kind]
    if field.minimum is not None or field.maximum is not None:
        parts.append(f"from {_num(field.minimum)} to {_num(field.maximum)}")
    if field.allowed:
        parts.append(f"one of {len(field.allowed)} values")
    parts.append("may be null or left out" if field.nullable else "required")
    return ", ".join(parts)


def _num(value: float | None) -> str:
    return "any" if value is None else f"{value:g}"


def check_body(payload: Any, max_batch: int, key: str) -> list[Any]:
    """The rows of a parsed body {key: [...]}, or ApiError: not an object with a `key` list, empty, or over
    max_batch."""
    if not isinstance(payload, dict) or key not in payload:
        raise ApiError(422, "invalid_body", f'the body is a JSON object {{"{key}": [ {{...}}, ... ]}}', field=key)
    unknown = sorted(set(payload) - {key})
    if unknown:
        raise ApiError(
            422, "invalid_body", f"unknown key {unknown[0]!r}; the body holds only {key!r}", field=unknown[0]
        )
    rows = payload[key]
    if not isinstance(rows, list):
        raise ApiError(422, "invalid_body", f"{key}: expected a list of row objects", field=key)
    if not rows:
        raise ApiError(422, "empty_batch", f"{key}: the list is empty; send 1 or more rows", field=key)
    if len(rows) > max_batch:
        raise ApiError(
            413,
            "batch_too_large",
            f"{key}: {len(rows)} rows, more than serve.max_batch = {max_batch}; split the batch",
            field=key,
            limit=max_batch,
        )
    return rows


def check_rows(items: list[Any], row_model: type[BaseModel], key: str) -> list[dict[str, Any]]:
    """Each row validated by the Row model (all fields, nulls for left-out nullable ones), or ApiError 422 for
    the first bad value: its row (`key[i]`), field and rule."""
    rows = []
    for row, item in enumerate(items):
        try:
            rows.append(row_model.model_validate(item).model_dump())
        except _ValidationError as exc:
            raise _first_problem(exc, row, key) from None
    return rows


def _first_problem(exc: _ValidationError, row: int, key: str) -> ApiError:
    error = exc.errors(include_url=False)[0]
    loc = [str(p) for p in error["loc"] if not isinstance(p, int)]
    field = loc[0] if loc else None
    kind = error["type"]
    where = f"{key}[{row}]" + (f".{field}" if field else "")
    value = error.get("input")
    if kind == "missing":
        message = f"{where}: missing; this field is required"
    elif kind == "extra_forbidden":
        message = f"{where}: unknown field; send only the fields of the input schema (GET /openapi.json)"
    elif kind == "model_type":
        message = f"{where}: expected a JSON object of the row's fields, got {_show(value)}"
    else:
        message = f"{where}: {_show(value)}: {error['msg']}"
    return ApiError(422, "invalid_input", message, field=field, row=row, rule=kind)


def _show(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
