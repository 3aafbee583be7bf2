"""HTTP API: incidents out, control in."""

from .app import create_app

__all__ = ["create_app"]
