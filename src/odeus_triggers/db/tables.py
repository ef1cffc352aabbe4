"""ORM tables. Relationships are lazy="raise" so that no hidden query slips onto a request path."""

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .engine import Base

JSONType = JSON().with_variant(JSONB(), "postgresql")
Timestamp = DateTime(timezone=True)


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    # SHA-256 of the whole key, hex; the key itself is never stored.
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the key, so that an operator can tell keys apart in listings.
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)


class Integration(Base):
    __tablename__ = "integrations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(String(90))
    created_at: Mapped[datetime] = mapped_column(Timestamp)


# The case-insensitive unique name index: its violation is the 409 trigger_name_conflict.
NAME_INDEX = "uq_triggers_integration_id_lower_name"


class Trigger(Base):
    __tablename__ = "triggers"
    __table_args__ = (
        Index(NAME_INDEX, "integration_id", func.lower("name"), unique=True),
        UniqueConstraint("integration_id", "slug"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    integration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(100))
    slug: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(90))
    type: Mapped[str] = mapped_column(String(16))
    polling_code: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)

    input_fields: Mapped[list["TriggerInputField"]] = relationship(
        lazy="raise", order_by="TriggerInputField.position", passive_deletes=True
    )


class TriggerInputField(Base):
    __tablename__ = "trigger_input_fields"
    __table_args__ = (UniqueConstraint("trigger_id", "position"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    trigger_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("triggers.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    slug: Mapped[str] = mapped_column(String(120))
    label: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(String(500))
    placeholder: Mapped[str | None] = mapped_column(String(200))
    required: Mapped[bool] = mapped_column(Boolean)
    options: Mapped[list[dict] | None] = mapped_column(JSONType)
    allow_multi_select: Mapped[bool | None] = mapped_column(Boolean)


class IdempotencyRecord(Base):
    """One Idempotency-Key of one API key: the request's fingerprint and, once finished, its response."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    # A new id for every claim, so that a claimant that lost its claim cannot overwrite the next one.
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    api_key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    # Null while the first request is in flight.
    status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp, index=True)
