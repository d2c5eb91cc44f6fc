"""The fetch stage: robots.txt, politeness, the HTTP client, caching, rendering."""

from __future__ import annotations

from .budget import BodyBudget, Claim
from .certificates import certificates_loaded
from .network import Network
from .politeness import default_host_policy
from .single import SingleFetcher, single_fetcher
from .stage import FetchStage, Page

__all__ = [
    "BodyBudget",
    "Claim",
    "FetchStage",
    "Network",
    "Page",
    "SingleFetcher",
    "certificates_loaded",
    "default_host_policy",
    "single_fetcher",
]
