"""What a crawl's start-up loads: only what the crawl uses."""

from __future__ import annotations

import subprocess
import sys

from ..support.cli import SPIDER
from ..support.sites import html


def test_a_plain_crawl_loads_neither_rich_nor_aiolimiter(serve, tmp_path):
    """rich draws the live progress line on a terminal, and the summary does without;
    aiolimiter paces hosts with a ``rate`` or a Crawl-delay, and this crawl has
    neither (its import looks up package metadata, a cost every run would pay)."""
    server = serve({"/": html("home")})
    (tmp_path / "spider.py").write_text(SPIDER)
    code = (
        "import sys\n"
        "from crawler.cli.main import main\n"
        f"sys.argv = ['crawl', 'spider.py', '-a', 'start={server.url}/', '-O', 'out.jsonl']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(name for name in ('rich', 'aiolimiter') if name in sys.modules))\n"
    )
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.stdout.strip() == "[]", done.stderr
    assert "crawl finished" in done.stderr and " pages " in done.stderr
