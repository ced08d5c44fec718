"""`Idempotency-Key` on /v1's creating POSTs: the same key and body within 24 hours replays the first
answer and creates nothing; the same key with another body is a 409. Kept in the database
(`idempotency_keys`), so it holds across processes and restarts."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from clarion import errors
from clarion.db import utcnow
from clarion.runtime import SessionDep
from clarion.v1.access import CallerDep
from clarion.v1.repository import IdempotencyRepository

# 24 hours: how long a client may retry a creating call and get the first answer (Stripe's window).
WINDOW = timedelta(hours=24)
MAX_KEY = 255
HEADER = "Idempotency-Key"


class Replay(Exception):
    """The request repeats an earlier one: answer what was answered then (rendered by app.py)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.response = JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"})


class Once:
    """The key of one creating request, if it carries one: `record` keeps the answer it gives."""

    def __init__(self, repo: IdempotencyRepository | None, scope: str = "", key: str = "") -> None:
        self.repo, self.scope, self.key = repo, scope, key

    async def record(self, status: int, answer: BaseModel) -> JSONResponse:
        body = jsonable_encoder(answer)
        if self.repo is not None:
            await self.repo.answer(self.scope, self.key, status, body)
        return JSONResponse(body, status_code=status)


def _valid_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY or not key.isascii() or not key.isprintable():
        raise errors.InvalidField(f"{HEADER}: must be 1-{MAX_KEY} printable ASCII characters", field=HEADER)
    return key


async def once(
    request: Request,
    who: CallerDep,
    session: SessionDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            description="Any unique string (a UUID): a retry with the same key and body within 24 hours "
            "gets the first answer and creates nothing",
        ),
    ] = None,
) -> Once:
    if idempotency_key is None:
        return Once(None)
    key = _valid_key(idempotency_key)
    scope = "admin" if who.app is None else f"app:{who.app.id}"
    digest = hashlib.sha256(f"{request.method} {request.url.path}\n".encode())
    digest.update(await request.body())
    repo, now = IdempotencyRepository(session), utcnow()
    if await repo.claim(scope, key, digest.hexdigest(), now, now - WINDOW):
        return Once(repo, scope, key)
    earlier = await repo.get(scope, key)
    if earlier is None or earlier.fingerprint != digest.hexdigest():
        raise errors.IdempotencyConflict(field=HEADER)
    if earlier.status == 0:
        raise errors.IdempotencyConflict(
            "The first request with this Idempotency-Key is still running", field=HEADER
        )
    raise Replay(earlier.status, earlier.response)


OnceDep = Annotated[Once, Depends(once)]
