"""/v1/apps/{app_key}/segments: saved audiences (a `tags_segment` list), with their live size."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from clarion.campaign import service
from clarion.gravitec.push_body import parse_terms
from clarion.models import App, Segment
from clarion.runtime import SessionDep
from clarion.v1.access import ScopedAppDep
from clarion.v1.body import Body
from clarion.v1.campaigns import TermIn
from clarion.v1.idempotency import OnceDep
from clarion.v1.listing import PageDep, paged
from clarion.v1.pagination import Page
from clarion.validation import PathId

router = APIRouter(prefix="/apps/{app_key}/segments", tags=["Segments"])

_EXAMPLE_TERMS: list[JsonValue] = [
    {"association": "AND", "name": "news"},
    {"association": "AND_NOT", "name": "sport"},
]


class SegmentCreate(Body):
    """The terms fold left to right from the whole audience, as a push's `tags_segment` (docs/api.md)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "News, not sport", "tags_segment": _EXAMPLE_TERMS}]},
    )

    name: str = Field(min_length=1, max_length=255)
    tags_segment: list[TermIn]


class SegmentRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "segment_id": 7,
                    "name": "News, not sport",
                    "tags_segment": _EXAMPLE_TERMS,
                    "size": 1200,
                    "size_by_platform": {"web": 1000, "android": 150, "ios": 50, "adm": 0, "wns": 0},
                }
            ]
        }
    )

    segment_id: int
    name: str
    tags_segment: list[TermIn]
    size: int | None = Field(
        description="Active subscribers it selects now (shown one at a time; null in lists)"
    )
    size_by_platform: dict[str, int] | None = None


def _read(segment: Segment, by_platform: dict[str, int] | None = None) -> SegmentRead:
    terms = [TermIn.model_validate(term) for term in segment.tags_segment]
    size = None if by_platform is None else sum(by_platform.values())
    return SegmentRead(
        segment_id=segment.id, name=segment.name, tags_segment=terms, size=size, size_by_platform=by_platform
    )


async def _sized(session: SessionDep, app: App, segment: Segment) -> SegmentRead:
    return _read(segment, await service.segment_size(session, app, segment))


@router.post("", status_code=201, response_model=SegmentRead)
async def create_segment(
    body: SegmentCreate, app: ScopedAppDep, session: SessionDep, once: OnceDep
) -> JSONResponse:
    raw: list[dict[str, Any]] = [term.model_dump() for term in body.tags_segment]
    segment = await service.create_segment(session, app, body.name, parse_terms(raw, "tags_segment"))
    return await once.record(201, await _sized(session, app, segment))


@router.get("")
async def list_segments(app: ScopedAppDep, session: SessionDep, asked: PageDep) -> Page[SegmentRead]:
    found = await service.segments(session, app, asked.after, asked.fetch)
    return paged(found, asked, lambda segment: segment.id, _read)


@router.get("/{segment_id}")
async def show_segment(segment_id: PathId, app: ScopedAppDep, session: SessionDep) -> SegmentRead:
    return await _sized(session, app, await service.get_segment(session, app, segment_id))


@router.delete("/{segment_id}", status_code=204)
async def delete_segment(segment_id: PathId, app: ScopedAppDep, session: SessionDep) -> Response:
    """The saved audience; campaigns already sent to it keep their audience."""
    await service.delete_segment(session, app, segment_id)
    return Response(status_code=204)
