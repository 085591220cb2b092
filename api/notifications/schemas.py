"""Schemas of the webhook routes (suffixes as in :mod:`api.schemas`)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field, field_validator

from api.notifications.outbox import NOTIFICATION_TYPES
from api.notifications.webhooks import check_event_types, check_secret, check_url
from api.schemas import StrictModel


class WebhookCreate(StrictModel):
    url: str = Field(
        max_length=2000,
        description="https URL, or http on a loopback address (127.0.0.1, ::1, localhost)",
        examples=["https://crm.example.com/hooks/rescue"],
    )
    event_types: list[str] = Field(
        default_factory=list,
        max_length=len(NOTIFICATION_TYPES),
        description="Notification types to send here; empty = all "
        f"({', '.join(NOTIFICATION_TYPES)})",
        examples=[["request.assigned", "request.delayed", "request.arrived"]],
    )
    secret: str | None = Field(
        default=None,
        max_length=200,
        description="Signing secret whsec_<base64 of 24-64 bytes>; generated when omitted",
    )
    description: str = Field(default="", max_length=200)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        return check_event_types(value)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return None if value is None else check_secret(value)


class DeliveryCounts(BaseModel):
    pending: int = 0
    delivered: int = 0
    failed: int = 0
    cancelled: int = 0


class WebhookRead(BaseModel):
    id: int
    url: str
    event_types: list[str] = Field(description="Empty = all types")
    description: str
    created_at: dt.datetime
    deliveries: DeliveryCounts


class WebhookCreated(WebhookRead):
    secret: str = Field(description="The signing secret; shown only in this answer")
