"""The error catalogue: every error Clarion answers with, as data.

Each error carries a stable code, an HTTP status, a message and (for input errors) the field it is
about. The native JSON renderer and the vendor-compatible renderers (gravitec/, swrve/) draw from this
one catalogue.
"""

from __future__ import annotations


class ClarionError(Exception):
    code = "internal_error"
    status = 500
    message = "Internal error"

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.message = message or type(self).message
        self.field = field
        super().__init__(self.message)

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class BadRequest(ClarionError):
    code = "bad_request"
    status = 400
    message = "The request could not be read"


class MissingParameter(ClarionError):
    code = "missing_parameter"
    status = 400
    message = "A required parameter is missing"


class InvalidField(ClarionError):
    code = "invalid_field"
    status = 422
    message = "A field is invalid"


class NotFound(ClarionError):
    code = "not_found"
    status = 404
    message = "Not found"


class CampaignPastRetention(ClarionError):
    """The campaign's ledger rows were folded away (CLARION_LEDGER_RETENTION_DAYS): whether it was sent to
    this subscriber can no longer be checked, so its engagement is no longer counted."""

    code = "campaign_past_retention"
    status = 410
    message = "This campaign is past the ledger's retention: its engagement is no longer counted"


class MethodNotAllowed(ClarionError):
    code = "method_not_allowed"
    status = 405
    message = "Method Not Allowed"


class UnknownApp(ClarionError):
    code = "unknown_app"
    status = 403
    message = "There is no web site with this appKey"


class BadCredentials(ClarionError):
    """No usable credentials at all (401, with the challenge). Credentials that do not match, whether
    the key is unknown or the secret wrong, are refused alike with UnknownApp (403)."""

    code = "bad_credentials"
    status = 401
    message = "HTTP Basic authentication with APP_KEY:APP_SECRET is required"


class UnknownSubscriber(ClarionError):
    code = "unknown_subscriber"
    status = 422
    message = "There is no follower with this regId!"


class AliasTooLong(ClarionError):
    code = "alias_too_long"
    status = 422
    message = "Max alias length is 255!"


class TagNotOnSubscriber(ClarionError):
    code = "tag_not_on_subscriber"
    status = 422
    message = "The follower doesn't have this tag!"


class UnknownMessage(ClarionError):
    code = "unknown_message"
    status = 422
    message = "There is no message with this id!"


class QuotaExceeded(ClarionError):
    code = "quota_exceeded"
    status = 429
    message = "The free plan allows 10 push campaigns per day through the API"


class Unavailable(ClarionError):
    code = "unavailable"
    status = 503
    message = "A backing service is unreachable"
    # Seconds a client should wait before it tries again (the Retry-After header of every 503).
    retry_after_s = 1


class ServiceUnavailable(Unavailable):
    """The database (or the queue) did not answer in time: nothing was done, the call may be repeated."""

    code = "service_unavailable"
    status = 503
    message = (
        "The service is temporarily unavailable (its database or queue did not answer); try again shortly"
    )
    retry_after_s = 1


class Unauthorized(ClarionError):
    code = "unauthorized"
    status = 401
    message = "A valid admin bearer token is required"


class Forbidden(ClarionError):
    """The caller is known but may not do this: /v1, an app's own credentials on an admin-only route;
    the console, an operator whose role does not allow it (with its own message)."""

    code = "forbidden"
    status = 403
    message = "These credentials may not do this: the admin token is required"


class CampaignFinished(ClarionError):
    """/v1: cancelling a campaign that has already ended (sent, failed or cancelled)."""

    code = "campaign_finished"
    status = 409
    message = "This campaign has finished: there is nothing to cancel"


class ScheduleFinished(ClarionError):
    """Pausing, resuming or cancelling a recurring schedule that has ended or was cancelled."""

    code = "schedule_finished"
    status = 409
    message = "The schedule has ended or was cancelled"


class CampaignNotSending(ClarionError):
    """/v1: pausing a campaign that is neither scheduled nor sending (paused already, or finished)."""

    code = "campaign_not_sending"
    status = 409
    message = "Only a scheduled or sending campaign can be paused"


class CampaignNotPaused(ClarionError):
    """/v1: resuming a campaign that is not paused."""

    code = "campaign_not_paused"
    status = 409
    message = "Only a paused campaign can be resumed"


class CampaignNotSent(ClarionError):
    """/v1: updating or retracting a campaign that has not started sending (cancel it, or wait)."""

    code = "campaign_not_sent"
    status = 409
    message = "This campaign has sent nothing yet: there is nothing to update or retract"


class IdempotencyConflict(ClarionError):
    """/v1: an Idempotency-Key used before, within its 24 hours, with another request."""

    code = "idempotency_conflict"
    status = 409
    message = "This Idempotency-Key was used with another request"


class IdentityNotVerified(ClarionError):
    """A device bound to a user id without the HMAC the app's backend makes (identity verification)."""

    code = "identity_not_verified"
    status = 403
    message = "The user id is not verified: its hash is missing or wrong"


class BodyTooLarge(ClarionError):
    """Any route's body over the server-wide ceiling (body_limit.py)."""

    code = "request_entity_too_large"
    status = 413
    message = "Request Entity Too Large"


# The Swrve-compatible Batch Push API's documented errors (spec/swrve-batch-push-api.txt).


class UnsupportedMethod(ClarionError):
    code = "unsupported_method"
    status = 400
    message = "Unsupported HTTP method"


class FeatureNotAvailable(ClarionError):
    code = "feature_not_available"
    status = 403
    message = "Feature Not Available"


class InvalidPushKey(ClarionError):
    code = "invalid_push_key"
    status = 404
    message = "Invalid Push API Key"


class InvalidIdentityKey(ClarionError):
    code = "invalid_identity_key"
    status = 404
    message = "Invalid identity key"


class IdentityKeyMismatch(ClarionError):
    code = "identity_key_mismatch"
    status = 404
    message = "Identity key and campaign key refer to different apps"


class InvalidBatchId(ClarionError):
    code = "invalid_batch_id"
    status = 404
    message = "Invalid Batch ID"


class BatchTooLarge(ClarionError):
    """A Swrve batch over the spec's 256 KB; its vendor body shows the status and message only."""

    code = "batch_too_large"
    status = 413
    message = "Request Entity Too Large"


class RateLimitExceeded(ClarionError):
    code = "rate_limit_exceeded"
    status = 429
    message = "Rate Limit Exceeded"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__()
        self.retry_after_s = retry_after_s


# The web console's (/console/, rendered as pages by the console itself).


class SignInFailed(ClarionError):
    """A wrong email or password, alike: the answer does not tell which accounts exist."""

    code = "sign_in_failed"
    status = 401
    message = "The email or the password is wrong"


class SignInThrottled(ClarionError):
    code = "sign_in_throttled"
    status = 429
    message = "Too many wrong passwords: wait before trying again"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"Too many wrong passwords: try again in {retry_after_s} seconds")
        self.retry_after_s = retry_after_s


class CsrfRejected(ClarionError):
    code = "csrf_rejected"
    status = 403
    message = "The form's security token is missing or out of date: reload the page and try again"


CATALOGUE: tuple[type[ClarionError], ...] = (
    BadRequest,
    MissingParameter,
    InvalidField,
    NotFound,
    CampaignPastRetention,
    MethodNotAllowed,
    UnknownApp,
    BadCredentials,
    UnknownSubscriber,
    AliasTooLong,
    TagNotOnSubscriber,
    UnknownMessage,
    QuotaExceeded,
    Unavailable,
    ServiceUnavailable,
    Unauthorized,
    Forbidden,
    CampaignFinished,
    ScheduleFinished,
    CampaignNotSending,
    CampaignNotPaused,
    CampaignNotSent,
    IdempotencyConflict,
    IdentityNotVerified,
    BodyTooLarge,
    UnsupportedMethod,
    FeatureNotAvailable,
    InvalidPushKey,
    InvalidIdentityKey,
    IdentityKeyMismatch,
    InvalidBatchId,
    BatchTooLarge,
    RateLimitExceeded,
    SignInFailed,
    SignInThrottled,
    CsrfRejected,
)
