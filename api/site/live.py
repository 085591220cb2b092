"""Server-sent events: every new event of the log (requests, vans, trucks, cycles)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from api import state
from api.deps import StaffUser
from api.events import events_after, latest_event_id, sse_message
from api.responses import E401, E403

router = APIRouter(prefix="/v1", tags=["live"])

HEARTBEAT_S = 15.0


def _read(factory: sessionmaker[Session], after: int | None) -> tuple[int, list[str]]:
    with factory() as db, db.begin():
        if after is None:
            return latest_event_id(db_session=db), []
        events = events_after(db_session=db, after_id=after)
        return (events[-1].id if events else after), [sse_message(e) for e in events]


@router.get(
    "/live",
    summary="Live stream of changes (server-sent events)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream"},
        **E401,
        **E403,
    },
)
async def live(
    request: Request,
    _staff: StaffUser,
    max_seconds: Annotated[
        float, Query(gt=0, le=3600, description="Close the stream after this long")
    ] = 600.0,
    last_event_id: Annotated[
        int | None, Header(ge=0, le=2**62, description="Resume after this event id")
    ] = None,
) -> StreamingResponse:
    """`text/event-stream`; each message has `id` (the event id), `event` (its kind, e.g.
    `request_received`, `van_assigned`, `status_changed`, `van_position`) and JSON `data`.
    Read it with fetch() so the Bearer header can be sent (EventSource cannot)."""
    factory = state.get_session_factory(request.app)
    poll = state.get_settings(request.app).live_poll_s

    async def stream() -> AsyncIterator[str]:
        after = last_event_id
        if after is None:
            after, _ = await asyncio.to_thread(_read, factory, None)
        yield f'retry: 2000\nevent: hello\ndata: {{"after": {after}}}\n\n'
        deadline = time.monotonic() + max_seconds
        beat = time.monotonic() + HEARTBEAT_S
        while time.monotonic() < deadline:
            if await request.is_disconnected():
                return
            after, messages = await asyncio.to_thread(_read, factory, after)
            for message in messages:
                yield message
            if time.monotonic() >= beat:
                beat = time.monotonic() + HEARTBEAT_S
                yield ": keep-alive\n\n"
            await asyncio.sleep(min(poll, max(0.0, deadline - time.monotonic())))

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
