"""Every statistics counter, by its full name, with what it counts.

Code that counts uses these constants and never builds a name from pieces, so
``grep -rn 'dropped/robots_unreachable' crawler`` finds the line below and
``grep -rn DROPPED_ROBOTS_UNREACHABLE crawler`` every place that counts it. The
constants are plain strings: counting costs what it did with string literals.

A name is ``namespace/name`` (``errors/timeout``) or a bare name (``pages``);
``Stats.to_dict`` (what ``--stats`` writes) nests each namespace. One family is
open-ended: ``status/CODE``, a counter per HTTP status, named ``STATUS`` + the code.
A verdict that refuses a URL or a request *is* its counter's name (``vet_url``,
``Politeness.refusal``); messages show it without its namespace (``short``).

``COUNTERS`` maps each name to what it counts; the README's table of counters lists
exactly these (tests/test_counters.py checks both ways).
"""

from __future__ import annotations

COUNTERS: dict[str, str] = {}

# The namespaces, as prefixes.
STATUS = "status/"
ERRORS = "errors/"
DROPPED = "dropped/"


def _counter(name: str, meaning: str) -> str:
    COUNTERS[name] = meaning
    return name


def short(name: str) -> str:
    """A counter's name without its namespace: ``dropped/offsite`` -> ``offsite``."""
    return name.partition("/")[2] or name


PAGES = _counter(
    "pages",
    "pages fetched (responses other than redirects and retried answers), a job's earlier runs included",
)
ITEMS = _counter("items", "items written to the output, a job's earlier runs included")
RESPONSES = _counter(
    "responses", "HTTP responses received, redirects, retried answers and single fetches included"
)
BYTES = _counter("bytes", "body bytes of those responses, decoded")
RETRIES = _counter(
    "retries", "requests put back to be tried again (a transient error, or a 408, 429 or 5xx answer)"
)
START_REQUESTS = _counter("start_requests", "start requests queued (those not queued already)")
SINGLE_FETCHES = _counter("single_fetches", "responses to `self.fetch()` in `async def` callbacks")
_counter("status/CODE", "responses with the HTTP status CODE, one counter per status")

ERRORS_FETCH_ERROR = _counter(
    "errors/fetch_error", "fetches that failed otherwise (a request that cannot be sent, a browser failure)"
)
ERRORS_CONNECTION_ERROR = _counter(
    "errors/connection_error", "connections refused, reset or lost, after the retries"
)
ERRORS_TIMEOUT = _counter(
    "errors/timeout", "a deadline passed (connect, first byte or total), after the retries"
)
ERRORS_BROKEN_TRANSFER = _counter(
    "errors/broken_transfer", "bodies cut short (plain or compressed), after the retries"
)
ERRORS_DECODING_ERROR = _counter("errors/decoding_error", "bodies whose Content-Encoding does not decode")
ERRORS_BAD_RESPONSE = _counter("errors/bad_response", "malformed or oversized response heads")
ERRORS_TLS_ERROR = _counter("errors/tls_error", "certificate and other TLS errors")
ERRORS_TOO_LARGE = _counter("errors/too_large", "bodies over `max_size`, declared or decompressed")
ERRORS_BLOCKED_ADDRESS = _counter(
    "errors/blocked_address", "requests the address guard refused (their host's, or its robots.txt's)"
)
ERRORS_START_REQUESTS = _counter("errors/start_requests", "`start_requests()` raised")
ERRORS_INTERNAL = _counter(
    "errors/internal", "a bug of the crawler's own while handling a request (logged with the traceback)"
)
ERRORS_CALLBACK = _counter("errors/callback", "callbacks that raised")
ERRORS_NOT_HTML = _counter(
    "errors/not_html", "callbacks that used `css()` and the like on a body that is not HTML"
)
ERRORS_PARSE_TIMEOUT = _counter(
    "errors/parse_timeout", "callbacks that ran past `parse_timeout` (their worker replaced)"
)
ERRORS_WORKER_CRASH = _counter("errors/worker_crash", "pages whose parse worker died")
ERRORS_ITEM = _counter(
    "errors/item", "items not written: not a dict or dataclass, or a value the output format cannot carry"
)
ERRORS_PIPELINE = _counter("errors/pipeline", "items whose pipeline raised")

DROPPED_DUPLICATE = _counter("dropped/duplicate", "requests seen before")
DROPPED_INVALID_URL = _counter("dropped/invalid_url", "links that are no URL")
DROPPED_UNSUPPORTED_SCHEME = _counter(
    "dropped/unsupported_scheme", "links that are not http(s) (`mailto:`, `javascript:`, ...)"
)
DROPPED_URL_TOO_LONG = _counter("dropped/url_too_long", "URLs longer than `max_url_length`")
DROPPED_OFFSITE = _counter("dropped/offsite", "links outside `allowed_domains`")
DROPPED_DEPTH_LIMITED = _counter("dropped/depth_limited", "links deeper than `depth`")
DROPPED_ROBOTS = _counter("dropped/robots", "requests robots.txt disallows")
DROPPED_ROBOTS_UNREACHABLE = _counter(
    "dropped/robots_unreachable", "requests of an origin whose robots.txt failed three times"
)
DROPPED_HOST_FAILING = _counter("dropped/host_failing", "requests of a host the circuit breaker gave up on")
DROPPED_HOST_PAGE_LIMIT = _counter(
    "dropped/host_page_limit", "requests of a host that reached `max_pages_per_host`"
)
DROPPED_HTTP_STATUS = _counter(
    "dropped/http_status", "pages whose status the spider does not handle (`handle_httpstatus_list`)"
)
DROPPED_PIPELINE = _counter("dropped/pipeline", "items a pipeline dropped (returned `None`)")
DROPPED_CSV_FIELD = _counter("dropped/csv_field", "CSV values of a field the file has no column for")
DROPPED_REDIRECT_INVALID_URL = _counter("dropped/redirect_invalid_url", "redirects to no URL")
DROPPED_REDIRECT_UNSUPPORTED_SCHEME = _counter(
    "dropped/redirect_unsupported_scheme", "redirects to a scheme other than http(s)"
)
DROPPED_REDIRECT_URL_TOO_LONG = _counter(
    "dropped/redirect_url_too_long", "redirects to a URL longer than `max_url_length`"
)
DROPPED_REDIRECT_TOO_MANY = _counter("dropped/redirect_too_many", "redirects past `max_redirects`")
DROPPED_REDIRECT_LOOP = _counter("dropped/redirect_loop", "redirects back to a URL of the same chain")
DROPPED_REDIRECT_OFFSITE = _counter("dropped/redirect_offsite", "redirects outside `allowed_domains`")

# A vet_url verdict on a redirect's target, as the redirect's counter.
REDIRECT_DROPS = {
    DROPPED_INVALID_URL: DROPPED_REDIRECT_INVALID_URL,
    DROPPED_UNSUPPORTED_SCHEME: DROPPED_REDIRECT_UNSUPPORTED_SCHEME,
    DROPPED_URL_TOO_LONG: DROPPED_REDIRECT_URL_TOO_LONG,
}

POLITENESS_RETRY_AFTER = _counter("politeness/retry_after", "pauses of a host that Retry-After asked for")
POLITENESS_CIRCUIT_BREAKER = _counter(
    "politeness/circuit_breaker", "pauses of a failing host by the circuit breaker"
)

CACHE_HIT = _counter("cache/hit", "responses replayed from the HTTP cache (`--cache`)")
CACHE_MISS = _counter("cache/miss", "requests the cache had no fresh entry for")
CACHE_EXPIRED = _counter("cache/expired", "misses that found an entry older than `cache_expiry`")
CACHE_STORED = _counter("cache/stored", "responses stored in the cache")

RENDER_PAGES = _counter("render/pages", "pages rendered in the browser")
RENDER_MS = _counter("render/ms", "milliseconds of rendering in total (`--stats` adds `ms_per_page`)")
RENDER_REQUESTS = _counter("render/requests", "requests rendered pages made, fetched by the crawler")
RENDER_BLOCKED_REQUESTS = _counter(
    "render/blocked_requests",
    "requests of rendered pages refused (scope, resource type, size cap, WebSockets)",
)
RENDER_RETRIES = _counter("render/retries", "renders tried again after the browser crashed")
RENDER_CRASHES = _counter("render/crashes", "browser or page crashes")

PARSE_MAIN_PROCESS = _counter(
    "parse/main_process", "pages the main process parsed itself while every parse worker was busy"
)
