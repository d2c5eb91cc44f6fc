"""The output stage: item sinks, formats, pipelines, statistics files."""

from __future__ import annotations

from .formats import check_output_name, count_dropped_fields, open_sink
from .itemjson import encode_items
from .pipelines import PipelineError, Pipelines
from .sinks import FLUSH_BYTES, ClosedPipe, ItemSink, NullSink, StreamSink
from .statsfile import check_stats_target, write_stats

__all__ = [
    "FLUSH_BYTES",
    "ClosedPipe",
    "ItemSink",
    "NullSink",
    "PipelineError",
    "Pipelines",
    "StreamSink",
    "check_output_name",
    "check_stats_target",
    "count_dropped_fields",
    "encode_items",
    "open_sink",
    "write_stats",
]
