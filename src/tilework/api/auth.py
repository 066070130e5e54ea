"""Bearer authentication, scopes and workspace narrowing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Depends, Request
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tilework.accounts import hash_key
from tilework.errors import Forbidden, InvalidApiKey, NotFound
from tilework.service import Tilework
from tilework.store.models import ApiKey, Organization, Workspace, utcnow

LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Caller:
    key_id: str
    organization_id: str
    organization_name: str
    scopes: list[str] | None
    workspace_id: str | None
    key_created_at: datetime
    last_used_at: datetime | None

    def can(self, scope: str) -> bool:
        return self.scopes is None or scope in self.scopes

    def workspace_ids(self, session: Session) -> list[str]:
        """The workspaces this request may see."""
        if self.workspace_id is not None:
            return [self.workspace_id]
        return list(
            session.scalars(
                select(Workspace.id).where(
                    Workspace.organization_id == self.organization_id
                )
            )
        )

    def target_workspace(self, session: Session, requested: str | None = None) -> str:
        """The workspace new objects go to."""
        wanted = requested or self.workspace_id
        if wanted is not None:
            if wanted not in self.workspace_ids(session):
                raise NotFound(f"No workspace {wanted}.")
            return wanted
        default = session.scalars(
            select(Workspace.id)
            .where(Workspace.organization_id == self.organization_id)
            .order_by(Workspace.is_default.desc(), Workspace.created_at)
        ).first()
        if default is None:
            raise NotFound("This organization has no workspace.")
        return default


def tilework(request: Request) -> Tilework:
    return request.app.state.tilework  # type: ignore[no-any-return]


def authenticate(request: Request, tw: Tilework = Depends(tilework)) -> Caller:
    key = _bearer(request.headers.get("authorization"))
    with tw.db.read() as session:
        row = session.scalars(
            select(ApiKey).where(
                ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)
            )
        ).first()
        if row is None:
            raise InvalidApiKey(
                "The API key is not valid; check the Authorization header."
            )
        organization = session.get_one(Organization, row.organization_id)
        workspace_id = _narrowed_workspace(session, request, row.organization_id)

    last_used_at = _touch(tw, row)
    return Caller(
        key_id=row.id,
        organization_id=row.organization_id,
        organization_name=organization.name,
        scopes=row.scopes,
        workspace_id=workspace_id,
        key_created_at=row.created_at,
        last_used_at=last_used_at,
    )


def require(scope: str) -> Callable[..., Caller]:
    """A dependency that authenticates and checks one scope."""

    def check(caller: Caller = Depends(authenticate)) -> Caller:
        if not caller.can(scope):
            raise Forbidden(f"This API key lacks the {scope!r} scope.")
        return caller

    return check


def _bearer(header: str | None) -> str:
    if not header:
        raise InvalidApiKey("Send the API key as 'Authorization: Bearer <key>'.")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise InvalidApiKey("Send the API key as 'Authorization: Bearer <key>'.")
    return value.strip()


def _narrowed_workspace(
    session: Session, request: Request, organization_id: str
) -> str | None:
    wanted = request.headers.get("x-workspace-id")
    if not wanted:
        return None
    workspace = session.get(Workspace, wanted.strip())
    if workspace is None or workspace.organization_id != organization_id:
        raise NotFound(f"No workspace {wanted.strip()} in this organization.")
    return workspace.id


def _touch(tw: Tilework, row: ApiKey) -> datetime:
    """Record this use of the key (to the minute) and return the time recorded.

    The request itself counts as a use, so ``/whoami`` never shows a key in use as
    unused.
    """
    now = utcnow()
    if row.last_used_at is not None and now - row.last_used_at < LAST_USED_RESOLUTION:
        return row.last_used_at
    with tw.db.write() as session:
        session.execute(
            update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now)
        )
    return now
