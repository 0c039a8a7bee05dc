from __future__ import annotations

import logging
import logging.handlers
import re
from pathlib import Path

from configs.logging import setup_logging


def test_app_and_error_logs(tmp_path: Path) -> None:
    setup_logging(tmp_path, "INFO", console=False)
    log = logging.getLogger("tests.logging_probe")
    log.info("hello info")
    log.error("boom error")
    logging.getLogger("uvicorn.error").warning("uvicorn says")
    for handler in logging.getLogger().handlers:
        handler.flush()
    app = (tmp_path / "app.log").read_text()
    err = (tmp_path / "error.log").read_text()
    assert "hello info" in app and "boom error" in app and "uvicorn says" in app
    assert "boom error" in err and "hello info" not in err
    line = next(line for line in app.splitlines() if "hello info" in line)
    # time, module and line number on every line
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO", line)
    assert re.search(r"test_logging:\d+ hello info", line)
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.handlers.RotatingFileHandler)]
    assert {h.maxBytes for h in handlers} == {10 * 1024 * 1024} and {h.backupCount for h in handlers} == {5}
    setup_logging(tmp_path, "INFO", console=False)  # idempotent: no duplicated handlers
    assert len([h for h in logging.getLogger().handlers if isinstance(h, logging.handlers.RotatingFileHandler)]) == 2
