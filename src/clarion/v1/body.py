"""What every /v1 request body shares: an unknown property is refused (422 naming it), never ignored, so
a misspelled key cannot silently change what a call does."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
