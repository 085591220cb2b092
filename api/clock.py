"""The one clock of the API (timezone-aware UTC), so that services agree on "now"."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
