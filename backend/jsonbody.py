"""The one reading of a JSON request body: strict, bounded, and a clear 400 whatever the bytes are.

Every API route that takes a body goes through parse_json_object: the before-request guard of api_bp
for ordinary routes, and the GitHub webhook's service once the signature holds (it must not parse
an unsigned body). Strict means RFC 8259 JSON in UTF-8 with no duplicate keys, no NaN or Infinity,
no lone surrogates, and at most MAX_DEPTH levels of nesting, so that nothing downstream (pydantic,
the database driver, the recursion limit) meets a value it cannot handle.
"""
import json

from backend.errors import DomainError, ValidationFailed

MAX_DEPTH = 64


class MalformedJson(DomainError):
    status = 400
    code = "malformed_json"


MESSAGE = ("the body is not well-formed JSON: UTF-8, no duplicate keys, no NaN or Infinity, "
           f"at most {MAX_DEPTH} levels of nesting")


def _no_duplicate_keys(pairs):
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def _finite(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("a number too large for a double (Infinity) is not JSON we take")
    return value


def _check_values(document):
    """Depth within MAX_DEPTH and every string encodable as UTF-8; iterative, so any input is safe."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            value.encode("utf-8")  # a lone surrogate ("\ud800") raises UnicodeEncodeError, a ValueError
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise ValueError("nested too deeply")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    key.encode("utf-8")
                stack.append((item, depth + 1))


def parse_json(raw):
    """The JSON document in raw (bytes or str); MalformedJson (400) for anything that is not strict JSON."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
        document = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants,
                              parse_float=_finite)
        _check_values(document)
    except (ValueError, RecursionError):  # UnicodeError and JSONDecodeError are ValueErrors
        raise MalformedJson(MESSAGE) from None
    return document


def parse_json_object(raw):
    """parse_json, and the document must be an object (422 otherwise, like any body of the wrong shape)."""
    document = parse_json(raw)
    if not isinstance(document, dict):
        raise ValidationFailed("the body must be a JSON object", fields={"body": "must be a JSON object"})
    return document
