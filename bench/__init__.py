"""Benchmark: our crawler against Scrapy on the same generated site (see README.md)."""
