"""The ``videotranslator`` entrypoints (CLI). The core lives in ``pipelines``."""
