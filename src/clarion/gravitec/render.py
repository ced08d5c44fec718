"""The Gravitec v3 error bodies, rendered from the shared error catalogue."""

from __future__ import annotations

from http import HTTPStatus

from clarion import errors

# The documented 422s carry exactly these three keys; other input errors add the field they name.
_DOCUMENTED = (
    errors.UnknownSubscriber,
    errors.AliasTooLong,
    errors.TagNotOnSubscriber,
    errors.UnknownMessage,
)
WRONG_PARAMS = "Incomplete by wrong param(s)!"


def body(error: errors.ClarionError) -> dict[str, object]:
    if isinstance(error, errors.UnknownApp | errors.BadCredentials):
        return {"status": "incomplete by bad auth", "error_message": error.message}
    rendered: dict[str, object] = {
        "httpStatus": HTTPStatus(error.status).name,
        "error": WRONG_PARAMS if error.status in (400, 422) else HTTPStatus(error.status).phrase,
        "errorDescription": error.message,
    }
    if not isinstance(error, _DOCUMENTED) and error.field is not None:
        rendered["field"] = error.field
    return rendered
