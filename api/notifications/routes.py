"""``/v1/webhooks``: register, list and delete webhook endpoints (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from api.clock import utcnow
from api.db import models as m
from api.deps import SessionDep, require_roles
from api.notifications import webhooks
from api.notifications.schemas import DeliveryCounts, WebhookCreate, WebhookCreated, WebhookRead

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

Admin = Annotated[m.StaffToken, Depends(require_roles())]
"""Admin only (``require_roles`` always admits admin; no other role is listed)."""


def _read(row: m.NotificationEndpoint, counts: dict[str, int]) -> WebhookRead:
    return WebhookRead(
        id=row.id,
        url=row.url or "",
        event_types=row.event_types,
        description=row.description,
        created_at=row.created_at,
        deliveries=DeliveryCounts(**counts),
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated)
def create_webhook(body: WebhookCreate, db: SessionDep, _: Admin) -> WebhookCreated:
    """Register an endpoint for customer notifications. The answer carries the signing
    secret (the given one, or a generated ``whsec_`` secret): keep it, it is not shown again."""
    row = webhooks.create_endpoint(
        db_session=db,
        url=body.url,
        event_types=body.event_types,
        secret=body.secret,
        description=body.description,
        now=utcnow(),
    )
    return WebhookCreated(**_read(row, {}).model_dump(), secret=row.secret or "")


@router.get("", response_model=list[WebhookRead])
def list_webhooks(db: SessionDep, _: Admin) -> list[WebhookRead]:
    """The registered endpoints with their delivery counts (never the secrets)."""
    rows = webhooks.list_endpoints(db_session=db)
    counts = webhooks.delivery_counts(db_session=db, endpoint_ids=[r.id for r in rows])
    return [_read(r, counts[r.id]) for r in rows]


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(
    webhook_id: Annotated[int, Path(ge=1, le=2**31 - 1)], db: SessionDep, _: Admin
) -> None:
    """Stop sending to an endpoint; its pending deliveries are cancelled."""
    webhooks.delete_endpoint(db_session=db, endpoint_id=webhook_id, now=utcnow())
