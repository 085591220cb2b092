"""The travel-time provider of the dispatch cycle: the road graph, or great-circle estimates."""

from __future__ import annotations

import logging
import threading

from api.settings import Settings
from routing import GreatCircleProvider, TravelTimeProvider

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_cache: dict[tuple[str, str | None], tuple[TravelTimeProvider, str]] = {}


def travel_provider(settings: Settings) -> tuple[TravelTimeProvider, str]:
    """``(provider, name)`` for ``settings.travel_provider``; the road graph is loaded once per
    process and falls back to great-circle (logged) when it cannot be loaded."""
    key = (settings.travel_provider, settings.road_graph)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            return hit
        result: tuple[TravelTimeProvider, str]
        if settings.travel_provider == "road":
            try:
                result = (settings.road_graph_source().load(), "road")
            except (ValueError, OSError) as exc:
                logger.warning("road graph unavailable (%s); using great-circle times", exc)
                result = (GreatCircleProvider(), "great_circle")
        else:
            result = (GreatCircleProvider(), "great_circle")
        _cache[key] = result
        return result
