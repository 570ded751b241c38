"""Keyset pages for the fixed-shape endpoints (answers, process results): cursor in, cursor out.

A cursor is the sort key of the last row served, as URL-safe base64 of a JSON list. Decoding checks
each value against the key's Python types before it is bound, so a tampered cursor is a 400 and can
never reach SQL as anything but a value of the right type (it can only move the page).
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from assay.api.errors import bad_request

MAX_CURSOR = 2048


class Page(BaseModel):
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


def params_model(name: str, default_limit: int, max_limit: int, **filters: Any) -> type[BaseModel]:
    """The query parameters of a paged endpoint: `limit`, `cursor` and its own `filters`.

    Unknown parameters are a 400 (a misspelt filter must not silently return everything).
    """
    return create_model(
        name,
        __config__=ConfigDict(extra="forbid"),
        limit=(int, Field(min(default_limit, max_limit), ge=1, le=max_limit, description="Rows per page")),
        cursor=(
            str | None,
            Field(None, max_length=MAX_CURSOR, description="`next_cursor` of the previous page"),
        ),
        **filters,
    )


def encode(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(values))).decode().rstrip("=")


@functools.cache
def _adapter(types: tuple[type, ...]) -> TypeAdapter:
    return TypeAdapter(tuple[types])  # type: ignore[valid-type]


def decode(text: str, types: tuple[type, ...]) -> tuple:
    """The key values in `text`, typed as `types`; 400 for anything else."""
    try:
        if len(text) > MAX_CURSOR:
            raise ValueError
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return _adapter(types).validate_json(raw, strict=True)
    except (ValueError, binascii.Error, ValidationError):
        raise bad_request("cursor: not a cursor this endpoint handed out") from None


def split(
    rows: list[tuple], limit: int, key: Callable[[tuple], Sequence[Any]]
) -> tuple[list[tuple], str | None]:
    """The page's rows (the query asked for limit + 1) and the cursor of the next page, made of the
    last row's sort key (`key(row)`)."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode(key(rows[-1]))
