"""Serve the benchmark site in its own process, so its CPU is no crawler's.

``python -m bench.serve --pages 5000 --summary hits.json`` builds the site, prints one
JSON line (``url``, ``pages``, ``reachable``, ``html_bytes``) once listening, and on
SIGTERM or SIGINT writes a summary of the requests it received to ``--summary``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.site import DEFAULT_PAGES, DEFAULT_SEED, PRIVATE_PREFIX, serve_site
from crawler.sites.server import Hit, Page, SiteServer

EXAMPLES = 20  # targets listed per problem in the summary


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    server = SiteServer(record_hits=True)
    serve_site(server, args.pages, args.seed)
    summary = summarize(server.hits, server.routes)
    args.summary.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=DEFAULT_PAGES)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--summary", type=Path, required=True, help="Write the hit summary here on exit.")
    return parser.parse_args(argv)


def summarize(hits: list[Hit], routes: Mapping[str, Page]) -> dict[str, Any]:
    """What a crawler asked for: totals, repeats, robots.txt, private and unknown paths."""
    counts = Counter(hit.target for hit in hits)
    private = sorted(target for target in counts if PRIVATE_PREFIX in target)
    unknown = sorted(target for target in counts if target not in routes)
    return {
        "hits": len(hits),
        "distinct_targets": len(counts),
        "repeated_hits": len(hits) - len(counts),
        "robots_txt_hits": counts["/robots.txt"],
        "private_hits": sum(counts[target] for target in private),
        "private_examples": private[:EXAMPLES],
        "not_found_hits": sum(counts[target] for target in unknown),
        "not_found_examples": unknown[:EXAMPLES],
        "repeated_examples": [target for target, count in counts.most_common(EXAMPLES) if count > 1],
        "methods": dict(Counter(hit.method for hit in hits)),
        "user_agents": dict(Counter(hit.headers.get("user-agent", "") for hit in hits).most_common(3)),
    }


if __name__ == "__main__":
    sys.exit(main())
