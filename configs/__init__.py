"""Settings and logging set-up. Imports nothing of ours."""

from configs.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
