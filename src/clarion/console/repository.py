"""All SQL about console operators and their sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.models import Operator, OperatorSession
from clarion.validation import storable


class OperatorRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, operator: Operator) -> Operator:
        self.session.add(operator)
        await self.session.flush()
        return operator

    async def all(self) -> list[Operator]:
        return list((await self.session.execute(select(Operator).order_by(Operator.email))).scalars())

    async def delete(self, operator_id: int) -> bool:
        result = await self.session.execute(delete(Operator).where(Operator.id == operator_id))
        return bool(getattr(result, "rowcount", 0))

    async def by_email(self, email: str) -> Operator | None:
        if not storable(email):
            return None
        query = select(Operator).where(Operator.email == email)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def set_password(self, operator: Operator, password_hash: str) -> None:
        operator.password_hash = password_hash
        await self.session.flush()

    async def add_session(self, row: OperatorSession) -> None:
        self.session.add(row)
        await self.session.flush()

    async def session_of(self, token_hash: str, now: datetime) -> tuple[OperatorSession, Operator] | None:
        query = (
            select(OperatorSession, Operator)
            .join(Operator, Operator.id == OperatorSession.operator_id)
            .where(OperatorSession.token_hash == token_hash, OperatorSession.valid_until > now)
        )
        row = (await self.session.execute(query)).one_or_none()
        return None if row is None else (row[0], row[1])

    async def end_session(self, token_hash: str) -> None:
        await self.session.execute(delete(OperatorSession).where(OperatorSession.token_hash == token_hash))

    async def end_expired(self, now: datetime) -> None:
        await self.session.execute(delete(OperatorSession).where(OperatorSession.valid_until <= now))
