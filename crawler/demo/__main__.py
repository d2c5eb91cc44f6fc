"""``python -m crawler.demo [--host H] [--port N]``: serve the demo shop until Ctrl-C."""

import sys

from .cli import serve

sys.exit(serve([arg for arg in sys.argv[1:] if arg != "--serve"], prog="python -m crawler.demo"))
