"""The frontier stage: every request the crawl still has to make, and which host goes next."""

from __future__ import annotations

from .base import DurableFrontier, Frontier, FrontierStatus, HostPolicy, SharedFrontier, SharedStore
from .clusterstats import ClusterStats
from .factory import JOB_DATABASE, open_frontier, refuse_overwriting_a_job
from .job import Job
from .limiters import HostLimiters
from .memory import MemoryFrontier
from .sqlite import SqliteFrontier

__all__ = [
    "JOB_DATABASE",
    "ClusterStats",
    "DurableFrontier",
    "Frontier",
    "FrontierStatus",
    "HostLimiters",
    "HostPolicy",
    "Job",
    "MemoryFrontier",
    "SharedFrontier",
    "SharedStore",
    "SqliteFrontier",
    "open_frontier",
    "refuse_overwriting_a_job",
]
