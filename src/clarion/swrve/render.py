"""The Swrve Batch Push API's error bodies, rendered from the shared error catalogue."""

from __future__ import annotations

from clarion import errors


def body(error: errors.ClarionError) -> dict[str, object]:
    # The vendor documents each error as a code and a text; both are given, the text twice over
    # ("message" and "error") since clients read one or the other.
    return {"code": error.status, "message": error.message, "error": error.message}


def headers(error: errors.ClarionError) -> dict[str, str] | None:
    if isinstance(error, errors.RateLimitExceeded):
        return {"Retry-After": str(error.retry_after_s)}
    return None
