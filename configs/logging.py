"""Logging set-up for entrypoints: console, LOG_DIR/app.log (rotating 5 x 10 MB), LOG_DIR/error.log."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s [%(name)s] %(module)s:%(lineno)d %(message)s"
_MANAGED = "_videotranslator_handler"


def setup_logging(log_dir: str | Path, level: str = "INFO", *, console: bool = True) -> None:
    """Configure the root logger and the uvicorn/fastapi loggers. Safe to call more than once."""
    log_path = Path(log_dir)
    log_path.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter(FORMAT)

    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MANAGED, False)]:
        root.removeHandler(handler)
        handler.close()

    handlers: list[logging.Handler] = []
    app = logging.handlers.RotatingFileHandler(
        log_path / "app.log", maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8"
    )
    handlers.append(app)
    err = logging.handlers.RotatingFileHandler(
        log_path / "error.log", maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8"
    )
    err.setLevel(logging.ERROR)
    handlers.append(err)
    if console:
        handlers.append(logging.StreamHandler())
    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _MANAGED, True)
        root.addHandler(handler)
    root.setLevel(level.upper())

    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "fastapi", "ray.serve"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
        logger.setLevel(level.upper())
