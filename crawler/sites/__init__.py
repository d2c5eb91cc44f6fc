"""Local HTTP sites: the test and benchmark server and the generated benchmark site."""

from __future__ import annotations

from .server import Page, SiteServer, child_server

__all__ = ["Page", "SiteServer", "child_server"]
