"""Thin handlers for /push_batch: POST submits a batch, GET reads its status, anything else is 400."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from clarion import errors
from clarion.delivery.tasks import queue_grace_s
from clarion.runtime import RuntimeDep, SessionDep, after_commit
from clarion.swrve import accept, report, tasks

router = APIRouter(tags=["Swrve Batch Push"])
OTHER_METHODS = ["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


async def _bounded_body(request: Request) -> bytes:
    """Decided before parsing: a declared or actual size over 256 KB is refused unread."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > accept.MAX_BATCH_BYTES:
        raise errors.BatchTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > accept.MAX_BATCH_BYTES:
            raise errors.BatchTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/push_batch", status_code=202)
async def submit(request: Request, rt: RuntimeDep, session: SessionDep) -> JSONResponse:
    push_key = request.query_params.get("push_key")
    identity_key = request.query_params.get("identity_secret_key")
    keys = await accept.check_keys(session, accept.Submission(push_key, identity_key, b""))
    submission = accept.Submission(push_key, identity_key, await _bounded_body(request))
    batch_id = await accept.submit(
        session,
        submission,
        keys,
        per_minute=rt.settings.batch_rate_per_minute,
        time_limit_s=rt.settings.batch_time_limit_s,
        queue_grace_s=queue_grace_s(rt.settings),
    )
    after_commit(session, lambda: tasks.enqueue(rt.queue, batch_id))
    location = f"{str(request.base_url).rstrip('/')}/push_batch?batch_id={batch_id}"
    return JSONResponse(
        {"batch_id": batch_id, "location": location}, status_code=202, headers={"Location": location}
    )


@router.get("/push_batch")
async def batch_status(request: Request, session: SessionDep) -> dict[str, object]:
    # The spec's status call carries the batch id alone: the unguessable id is the credential.
    return await report.status(session, request.query_params.get("batch_id", ""), app=None)


@router.api_route("/push_batch", methods=OTHER_METHODS, include_in_schema=False)
async def unsupported(request: Request) -> JSONResponse:
    raise errors.UnsupportedMethod(f"Unsupported HTTP method {request.method}")


@router.api_route("/push_batch/{rest:path}", methods=["GET", "POST", *OTHER_METHODS], include_in_schema=False)
async def not_found(request: Request) -> JSONResponse:
    # The spec's "404 Not Found" for a wrong URI, in the API's own error body.
    raise errors.NotFound("Not Found")
