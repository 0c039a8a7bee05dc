"""Routers, one per resource: files, jobs, v1 (inference), web (the page), health."""
