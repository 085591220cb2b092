from __future__ import annotations

from fastapi import APIRouter

from api.db.engine import describe_url
from api.deps import SessionDep, SettingsDep
from api.network.seeding import network_counts
from api.schemas import HealthRead, NetworkCounts

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthRead, summary="Liveness and network counts")
def health(db: SessionDep, settings: SettingsDep) -> HealthRead:
    """Anyone may call it. Answers 200 when the database answers."""
    return HealthRead(
        status="ok",
        database=describe_url(settings.database_url).split("/")[0].rstrip(":"),
        network=NetworkCounts(**network_counts(db_session=db)),
    )
