"""``python -m crawler.demo [--host H] [--port N]``: serve the demo shop until Ctrl-C."""

from .cli import main

main(prog="python -m crawler.demo")
