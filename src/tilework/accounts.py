"""Organizations, workspaces and API keys; the first start's bootstrap."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tilework.store.db import Database
from tilework.store.models import ApiKey, Organization, Workspace

log = logging.getLogger(__name__)

KEY_PREFIX = "tw_"
ADMIN_KEY_FILE = "admin-api-key"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """Keys are 256-bit random strings, so one SHA-256 is a sound way to store them."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(
    session: Session,
    organization_id: str,
    *,
    key: str | None = None,
    name: str = "",
    scopes: list[str] | None = None,
) -> tuple[ApiKey, str]:
    plain = key or generate_key()
    row = ApiKey(
        organization_id=organization_id,
        name=name,
        prefix=plain[:10],
        key_hash=hash_key(plain),
        scopes=scopes,
    )
    session.add(row)
    session.flush()
    return row, plain


def create_organization(
    session: Session, name: str, *, workspace_name: str = "Default"
) -> tuple[Organization, Workspace]:
    organization = Organization(name=name)
    session.add(organization)
    session.flush()
    workspace = Workspace(
        organization_id=organization.id, name=workspace_name, is_default=True
    )
    session.add(workspace)
    session.flush()
    return organization, workspace


@dataclass(frozen=True)
class Bootstrap:
    created: bool
    api_key: str | None
    key_file: Path | None


def bootstrap(db: Database, data_dir: Path, *, configured_key: str | None) -> Bootstrap:
    """Create the first organization, workspace and admin key when there are none.

    With ``configured_key`` that key is made to exist (for scripted deployments) and
    nothing is written to disk. Otherwise a new key is shown once and kept in a file
    only its owner can read.
    """
    with db.write() as session:
        if configured_key:
            return _ensure_key(session, configured_key)
        if session.scalars(select(Organization.id).limit(1)).first() is not None:
            return Bootstrap(False, None, None)
        organization, _ = create_organization(session, "My organization")
        _, plain = create_key(session, organization.id, name="admin")

    path = data_dir / ADMIN_KEY_FILE
    _write_private(path, plain + "\n")
    log.info("created the first organization and its admin API key (kept in %s)", path)
    return Bootstrap(True, plain, path)


def _ensure_key(session: Session, key: str) -> Bootstrap:
    if session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).first():
        return Bootstrap(False, None, None)
    organization = session.scalars(
        select(Organization).order_by(Organization.created_at)
    ).first()
    if organization is None:
        organization, _ = create_organization(session, "My organization")
    create_key(session, organization.id, key=key, name="bootstrap")
    return Bootstrap(True, None, None)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
