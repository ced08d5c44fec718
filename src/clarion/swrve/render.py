"""The Swrve Batch Push API's error bodies, rendered from the shared error catalogue."""

from __future__ import annotations

from clarion import errors

# The spec's text for an unexpected server error.
INTERNAL_ERROR = "Internal Server Error"


def body(error: errors.ClarionError) -> dict[str, object]:
    # The vendor documents each error as a code and a text; both are given, the text twice over
    # ("message" and "error") since clients read one or the other.
    text = INTERNAL_ERROR if error.status == 500 else error.message
    return {"code": error.status, "message": text, "error": text}


def headers(error: errors.ClarionError) -> dict[str, str] | None:
    if isinstance(error, errors.RateLimitExceeded):
        return {"Retry-After": str(error.retry_after_s)}
    return None
