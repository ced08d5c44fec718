"""Serves processed notification pictures at stable URLs (`/pictures/{sha256}.{png|jpg}`)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from clarion.pictures import service
from clarion.runtime import SessionDep

router = APIRouter(prefix=service.PATH, tags=["Pictures"])

# A picture's URL names its bytes' digest, so the bytes behind it never change: cached for a year
# (the longest RFC 9111 caches are told to keep anything) and never revalidated.
CACHE_FOREVER = "public, max-age=31536000, immutable"


@router.get("/{name}", responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}})
async def picture(name: str, request: Request, session: SessionDep) -> Response:
    found = await service.find(session, name)
    headers = {
        "Cache-Control": CACHE_FOREVER,
        "ETag": f'"{found.digest}"',
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return Response(found.data, media_type=found.content_type, headers=headers)
