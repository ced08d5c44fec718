"""The Swrve Batch Push API's error bodies, rendered from the shared error catalogue."""

from __future__ import annotations

from clarion import errors

# The spec's texts for an unexpected server error and for a server that cannot answer now.
INTERNAL_ERROR = "Internal Server Error"
SPEC_TEXTS = {500: INTERNAL_ERROR, 503: "Service Unavailable"}


def body(error: errors.ClarionError) -> dict[str, object]:
    # The vendor documents each error as a code and a text; both are given, the text twice over
    # ("message" and "error") since clients read one or the other.
    text = SPEC_TEXTS.get(error.status, error.message)
    return {"code": error.status, "message": text, "error": text}


def headers(error: errors.ClarionError) -> dict[str, str] | None:
    if isinstance(error, errors.RateLimitExceeded):
        return {"Retry-After": str(error.retry_after_s)}
    return None
