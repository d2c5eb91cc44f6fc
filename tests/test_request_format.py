"""Requests stored by one version (a job's database, a Redis queue) load in later ones."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from crawler import Request
from crawler._pickling import FORMAT, restore
from crawler.parse.callbacks import ParseResult

DATA = Path(__file__).parent / "data"


def test_a_request_stored_in_format_1_still_loads() -> None:
    # Pickled by crawler before fields were named (positional tuple, no cb_kwargs).
    request = pickle.loads((DATA / "request-format1.pickle").read_bytes())
    assert request == Request(
        "http://shop.test/p/1.html?x=1",
        callback="parse_product",
        method="POST",
        headers={"X-Token": "a"},
        body=b"q=1",
        meta={"category": "books", "n": 3},
        priority=5,
        depth=2,
        dont_filter=True,
        retries=1,
        redirects=("http://shop.test/old",),
    )
    assert request.cb_kwargs == {}
    assert request.fingerprint == Request(request.url, method="POST", body=b"q=1").fingerprint


def test_requests_round_trip_with_every_field() -> None:
    request = Request(
        "http://shop.test/a", callback="parse_item", headers={"A": "1"}, meta={"m": [1]},
        priority=-3, depth=4, cb_kwargs={"category": "books", "page": 2},
    )  # fmt: skip
    assert request.fingerprint
    copy = pickle.loads(pickle.dumps(request, protocol=5))
    assert copy == request
    assert copy.cb_kwargs == {"category": "books", "page": 2}
    assert copy._fingerprint == request.fingerprint


def test_the_stored_format_names_its_fields_and_leaves_defaults_out() -> None:
    function, (cls, version, fields) = Request("http://a.test/", depth=1).__reduce__()
    assert (function, cls, version) == (restore, Request, FORMAT)
    assert fields == {"url": "http://a.test/", "depth": 1}


def test_fields_a_stored_request_lacks_take_their_defaults() -> None:
    request = restore(Request, FORMAT, {"url": "http://a.test/", "future_field": 1})
    assert request == Request("http://a.test/")


def test_a_request_from_a_newer_format_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="format 9; this version of crawler reads formats up to"):
        restore(Request, 9, {"url": "http://a.test/"})


def test_a_stored_request_without_a_url_is_refused() -> None:
    with pytest.raises(ValueError, match="lacks its required field 'url'"):
        restore(Request, FORMAT, {})


def test_parse_results_with_mutable_defaults_get_fresh_ones() -> None:
    first, second = pickle.loads(pickle.dumps([ParseResult(), ParseResult()]))
    first.requests.append(Request("http://a.test/"))
    assert second.requests == []


def test_cb_kwargs_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="cb_kwargs must be a mapping"):
        Request("http://a.test/", cb_kwargs=["page"])  # type: ignore[arg-type]
