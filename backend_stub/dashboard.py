"""Placeholder: filled in by its owner."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this module's routes on the central system's application."""
