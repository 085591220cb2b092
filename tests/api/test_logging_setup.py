"""Server logging: timestamps, levels and request ids on each line, INFO by default, JSON as
an option, X-Request-ID echoed or generated, and no secret from a query string in the access
log."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.logging_setup import AccessLogScrubber, log_config, request_id_var, scrub_path
from tests.api.conftest import request_body


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The server's logging configuration applied, its handler writing to a buffer; the
    previous configuration restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    yield stream
    root.handlers[:], root.level = saved  # type: ignore[misc]
    root.setLevel(saved[1])


def configure(stream: io.StringIO, log_format: str) -> None:
    config = log_config(level="INFO", log_format=log_format)
    logging.config.dictConfig(config)
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]


def test_text_lines_have_time_level_logger_and_request_id(captured: io.StringIO) -> None:
    """Finding 11: under `rescue serve` INFO lines never appeared and warnings came without
    time or level. The server configuration shows INFO from our loggers with both."""
    configure(captured, "text")
    token = request_id_var.set("req-42")
    try:
        logging.getLogger("api.requests.intake").info("request %s received", "r1")
    finally:
        request_id_var.reset(token)
    logging.getLogger("api.x").warning("outside a request")
    first, second = captured.getvalue().splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} INFO api.requests.intake \[req-42\] "
        r"request r1 received",
        first,
    )
    assert second.endswith("WARNING api.x [-] outside a request")


def test_json_lines(captured: io.StringIO) -> None:
    configure(captured, "json")
    token = request_id_var.set("abc")
    try:
        logging.getLogger("api.y").error("stored %d", 3)
    finally:
        request_id_var.reset(token)
    entry = json.loads(captured.getvalue())
    assert entry["level"] == "ERROR" and entry["logger"] == "api.y"
    assert entry["request_id"] == "abc" and entry["message"] == "stored 3"
    assert entry["time"].endswith("+00:00")


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    given = client.get("/health", headers={"X-Request-ID": "call-centre.7:abc"})
    assert given.headers["X-Request-ID"] == "call-centre.7:abc"
    made = client.post("/v1/requests", json=request_body())
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])
    hostile = client.get("/health", headers={"X-Request-ID": "a b\tc" + "x" * 200})
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["X-Request-ID"])


def test_request_id_reaches_the_logs_written_while_handling(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A line logged by the app (here a sync route, run in the threadpool) carries the id."""
    from fastapi import FastAPI

    from api.logging_setup import RequestIdFilter, RequestIdMiddleware

    app = FastAPI()

    @app.get("/work")
    def work() -> dict[str, str]:
        logging.getLogger("api.test").info("working")
        return {}

    app.add_middleware(RequestIdMiddleware)
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="api.test"), TestClient(app) as client:
        client.get("/work", headers={"X-Request-ID": "rq-1"})
        client.get("/work")
    ids = [getattr(r, "request_id", None) for r in caplog.records if r.name == "api.test"]
    assert ids[0] == "rq-1" and re.fullmatch(r"[0-9a-f]{32}", str(ids[1]))


def test_query_string_secrets_never_reach_the_access_log() -> None:
    """Finding 6: a staff token sent as ?token= was written to the access log verbatim."""
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/v1/kpis?token=rsk_SECRET&open=true&api_key=k1", "1.1",
         401),
        None,
    )  # fmt: skip
    assert AccessLogScrubber().filter(record)
    line = record.getMessage()
    assert "rsk_SECRET" not in line and "k1" not in line
    assert '"GET /v1/kpis?token=[redacted]&open=true&api_key=[redacted] HTTP/1.1" 401' in line
    assert scrub_path("/v1/requests?status=received") == "/v1/requests?status=received"
