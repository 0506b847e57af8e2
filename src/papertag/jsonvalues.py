"""Python values as DuckDB returns them → values that are always valid JSON (RFC 8259).

Decimals become numbers (an int when whole, else a float), dates and times ISO 8601 strings, UUIDs strings,
BLOBs base64 strings, NaN and ±Infinity null (JSON has no such numbers); lists, structs and maps keep their shape,
with map keys as strings. Anything else is written as its str().
"""

from __future__ import annotations

import base64
import json
import math
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from .text import C1_AND_BIDI


def json_ready(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {_json_key(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return str(value)  # UUID, BIT, and anything a newer DuckDB may add


def _json_key(key: Any) -> str:
    key = json_ready(key)
    return key if isinstance(key, str) else json.dumps(key)


def dumps(data: Any, **options: Any) -> str:
    """json.dumps after json_ready; allow_nan=False makes any value that slipped through an error, never bad JSON.
    The characters that reorder or control what a terminal shows are written as \\u escapes (they can only occur
    inside strings), so the output is safe on a terminal and still the same data."""
    text = json.dumps(json_ready(data), allow_nan=False, **options)
    return C1_AND_BIDI.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
