"""`RedisFrontier`: a `Frontier` in Redis, shared by every process of a crawl.

Many processes on many machines run the same spider against one Redis; the
frontier there holds the queue, the seen-set and per-host politeness for all of
them, so ``concurrency`` and ``interval`` hold for the whole cluster.

The interval, cluster-wide: ``take`` hands out a request of a host only if no
other is handed out and not yet started (the host's ``claim``), and reserves its
start: the host's last start plus ``interval`` (or its pause's end), or now if that
has passed. It hands a host out up to ``lead`` seconds before that start is due,
so that the time a node needs to get the request to the wire (its dispatcher, a
worker, this node's own limiter ``limiters``, which holds its share) is not added
to every interval. Inside that limiter the ``start`` script records the reserved
start as the host's last (or now less ``START_SLACK``, if the node got there
late), and the node waits, still inside it, until the reserved start is due. If
its event loop was busy and the request goes out more than ``START_SLACK`` after
the start recorded, the node tells Redis (the ``late`` script), without holding
the request back. So the interval holds between starts, not between takes,
however long a node takes from one to the other; and a host's starts follow one
another at the interval, not at the interval plus that time. ``lead`` adapts to
this node's delays (`_Lead`). Requests from outside the frontier (robots.txt,
single fetches) reserve the host's next free start in ``start`` itself. A request
that is never sent (refused after ``take``, or ended) gives the claim, and the
start reserved with it, back.

Every state change is one Lua script (atomic in Redis 6.2 or later); the scripts
share the helpers in ``_PRELUDE``. Time is the injected ``clock``, passed to each script, or
by default Redis's own ``TIME``, so machines with skewed clocks agree.

Key layout (``K`` = ``{<namespace>}:``; every key carries the hash tag)::

    K seq            STRING  counter: request ids and ring positions
    K count          HASH    seen, queued (queued requests, retries not yet due excluded)
    K s:<hhhh>       HASH    seen bucket: the first 2 bytes of a fingerprint name the
                             bucket (65536 of them), the other 6 bytes are a field
    K req            HASH    id -> "<priority> <host> <pickled Request>"
    K q:<host>       ZSET    a host's queue: id scored -priority; ids are fixed-width
                             hex, so equal priorities come out FIFO
    K h:<host>       HASH    n (slots held), last (last start), pause (paused until),
                             claim (id of a request taken, not yet started), at (the
                             start reserved for it),
                             conc and ivl (a ``throttle`` policy; else the node's default)
    K ring           ZSET    hosts ready when placed, scored by ring position (FIFO):
                             ``take`` serves them round-robin
    K wait           ZSET    hosts with work that wait for interval or pause: ready time
    K delayed        ZSET    retried request ids: due time
    K leases         ZSET    leased request ids: expiry
    K lease          HASH    id -> "<1|0: holds its host slot><node id>"
    K id             STRING  the crawl's identity, set by its first node (``_JOIN``)
    K stats          HASH    the crawl's counters, summed over its nodes (``add_stats``)
    K x:<key>        STRING  what the nodes share, such as robots.txt answers (``shared_set``)

As in `MemoryFrontier`, a host with work is in ``ring`` or ``wait`` unless its
concurrency is used up (``done`` places it again); a throttle may make a ring
host unready, which ``take`` and ``status`` notice when they reach it. Scripts do
O(log n) work per request; ``take`` and ``status`` also wake at most
``WAKE_BUDGET`` due hosts and retries and reclaim at most ``WAKE_BUDGET`` expired
leases per call.

Memory: seen fingerprints live in small hashes because Redis stores those as
listpacks, far more compactly than a SET of 8-byte strings (until there are few URLs
per bucket, when the buckets' own overhead shows). A bucket past
``hash-max-listpack-entries`` (default 512) turns into a hash table, several times
larger per entry: for crawls beyond ~25 million URLs, raise that setting. A queued
request's cost is mostly its pickle; each host keeps a small ``h:`` hash for good.
(``MEMORY USAGE`` figures: bench/README.md, "Measurements behind the code".)

Leases: ``take`` leases each request to this node (``node_id``) until ``now +
lease_seconds``; a background task renews this node's leases every third of
that. ``take`` and ``status`` on any node re-queue requests whose lease expired
(their node crashed, or lost Redis for longer than a lease), freeing their host
slots, so a request is fetched at least once, rarely twice. A re-queued request
gets a new id, so a late ``fetched``, ``done`` or ``retry`` from the node that
lost the lease finds nothing to end, logs a warning and does nothing more.
The node remembers its own lease ids (``done`` of an equal copy ends one of them).

Requests are stored pickled (protocol 5): every node runs the same code, and
anyone who can write to this Redis can run code on the nodes anyway.

Redis Cluster: every key has the hash tag ``{namespace}``, so one crawl lives in
one slot of one shard (several crawls spread over shards). The scripts build the
per-host and seen-bucket key names themselves rather than declare them, which a
cluster node accepts because they hash to the slot of the declared keys.
Spreading one crawl over shards would need a hash tag per host (queue and host
state per shard), a take that visits shards in turn, and a seen-set sharded by
fingerprint; not done here.

Connection trouble: if Redis cannot be reached at the first call, that call raises
`FrontierError` at once. A connection lost later is retried inside each call with
backoff (``RECONNECT_DELAYS``, about 10 s) before `FrontierError`. Retrying is safe:
a script runs whole or not at all, and a lost reply costs at most a duplicate
``dont_filter`` request or leases that expire and are re-queued. A `FrontierError`
is final: every later call raises it at once, so the node only shuts down.

Lost data: a Redis that forgets the crawl (``FLUSHALL``, a restart without
persistence) would otherwise look like a finished crawl. A node's first call
(``_JOIN``) reads the crawl's identity key, or writes a new random one; every
script compares it with the node's before changing anything, and a mismatch is a
`FrontierError` saying what was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .._errors import FrontierError
from .._request import Request
from .._urls import host_key
from .base import FrontierStatus, HostPolicy, SharedFrontier
from .limiters import HostLimiters

log = logging.getLogger("crawler.frontier")

DEFAULT_POLICY = HostPolicy()
RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 3.0)
ADD_BATCH = 1000
# The lead (see _Lead): where it starts, at most, how early a request should get to
# its host's limiter, how fast the lead follows.
LEAD_START, LEAD_MOST, LEAD_EARLY, LEAD_GAIN = 0.02, 0.2, 0.005, 0.25
# How late after its reserved start a node may record a start without moving the
# host's next start, and how late its reply may come back before the node tells
# Redis its start was later.
START_SLACK = 0.01
RENEW_BATCH = 1000
_KEYS = ("seq", "count", "req", "ring", "wait", "delayed", "leases", "lease", "id")

# KEYS: _KEYS in order. ARGV[1] key prefix, ARGV[2] now ("" = Redis TIME),
# ARGV[3] and ARGV[4] default concurrency and interval, ARGV[5] the crawl's identity
# (see _JOIN); each script's own from ARGV[6]. A script whose identity does not match
# the crawl's identity key changes nothing and fails with ``LOST_MARK``.
_PRELUDE = r"""
local WAKE_BUDGET, SKIP_BUDGET = 1000, 100
local K_SEQ, K_COUNT, K_REQ, K_RING = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_WAIT, K_DELAYED, K_LEASES, K_LEASE = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local P = ARGV[1]
if redis.call('GET', KEYS[9]) ~= ARGV[5] then
  return redis.error_reply('CRAWL_DATA_LOST the identity key is gone or changed')
end
local DEFAULT_CONC, DEFAULT_IVL = tonumber(ARGV[3]), tonumber(ARGV[4])
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1e6
end
-- a host whose next start is due by ``soon`` counts as ready: ``take`` and ``status``
-- look ``lead`` seconds ahead, so that the start can be reserved before it is due
local soon = now

local function host_key(host) return P .. 'h:' .. host end
local function queue_key(host) return P .. 'q:' .. host end
local function new_id() return string.format('%012x', redis.call('INCR', K_SEQ)) end

-- "<priority> <host> <blob>" -> priority, host, blob
local function parse(rec)
  local a = string.find(rec, ' ', 1, true)
  local b = string.find(rec, ' ', a + 1, true)
  return tonumber(string.sub(rec, 1, a - 1)), string.sub(rec, a + 1, b - 1), string.sub(rec, b + 1)
end

-- when the host may start its next request; nil while it has nothing queued
-- or is at its concurrency limit
local function ready_at(host)
  if redis.call('EXISTS', queue_key(host)) == 0 then return nil end
  local h = redis.call('HMGET', host_key(host), 'n', 'last', 'pause', 'conc', 'ivl', 'claim')
  if h[6] or (tonumber(h[1]) or 0) >= (tonumber(h[4]) or DEFAULT_CONC) then return nil end
  local t = -math.huge
  if h[2] then t = tonumber(h[2]) + (tonumber(h[5]) or DEFAULT_IVL) end
  local pause = tonumber(h[3])
  if pause and pause > t then t = pause end
  return t
end

-- put the host where its readiness says: ring, wait, or nowhere; a ring host stays
local function place(host)
  if redis.call('ZSCORE', K_RING, host) then return end
  local t = ready_at(host)
  if t == nil then
    redis.call('ZREM', K_WAIT, host)
  elseif t <= soon then
    redis.call('ZREM', K_WAIT, host)
    redis.call('ZADD', K_RING, redis.call('INCR', K_SEQ), host)
  else
    redis.call('ZADD', K_WAIT, t, host)
  end
end

-- hosts to place once at the end of a script, in first-touched order
local touched, touched_list = {}, {}
local function touch(host)
  if not touched[host] then
    touched[host] = true
    touched_list[#touched_list + 1] = host
  end
end
local function place_touched()
  for _, host in ipairs(touched_list) do place(host) end
  touched, touched_list = {}, {}
end

local function enqueue(id, priority, host)
  redis.call('ZADD', queue_key(host), -priority, id)
  redis.call('HINCRBY', K_COUNT, 'queued', 1)
  touch(host)
end

-- the request id handed out but not started gives its host's claim (and the start
-- reserved with it) back
local function unclaim(host, id)
  if redis.call('HGET', host_key(host), 'claim') == id then
    redis.call('HDEL', host_key(host), 'claim', 'at')
  end
end

-- the lease value of id if node holds it, else nil
local function lease_of(id, node)
  local v = redis.call('HGET', K_LEASE, id)
  if v and string.sub(v, 2) == node then return v end
  return nil
end

-- end the lease of id (value v), free its host slot if it holds one; returns its record
local function end_lease(id, v)
  redis.call('ZREM', K_LEASES, id)
  redis.call('HDEL', K_LEASE, id)
  local rec = redis.call('HGET', K_REQ, id)
  redis.call('HDEL', K_REQ, id)
  local _, host = parse(rec)
  if string.sub(v, 1, 1) == '1' then redis.call('HINCRBY', host_key(host), 'n', -1) end
  unclaim(host, id)
  touch(host)
  return rec
end

-- re-queue requests whose lease expired; returns how many
local function reclaim()
  local ids = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now, 'LIMIT', 0, WAKE_BUDGET)
  for _, id in ipairs(ids) do
    local rec = end_lease(id, redis.call('HGET', K_LEASE, id))
    local priority, host = parse(rec)
    local new = new_id()
    redis.call('HSET', K_REQ, new, rec)
    enqueue(new, priority, host)
  end
  place_touched()
  return #ids
end

-- due retries into their queues, due hosts into the ring, unready hosts off its head
local function wake_up()
  local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, WAKE_BUDGET)
  for _, id in ipairs(due) do
    redis.call('ZREM', K_DELAYED, id)
    local priority, host = parse(redis.call('HGET', K_REQ, id))
    enqueue(id, priority, host)
  end
  place_touched()
  local hosts = redis.call('ZRANGEBYSCORE', K_WAIT, '-inf', soon, 'LIMIT', 0, WAKE_BUDGET)
  for _, host in ipairs(hosts) do
    redis.call('ZREM', K_WAIT, host)
    place(host)
  end
  for _ = 1, SKIP_BUDGET do
    local head = redis.call('ZRANGE', K_RING, 0, 0)[1]
    if not head then break end
    local t = ready_at(head)
    if t ~= nil and t <= soon then break end
    redis.call('ZREM', K_RING, head)
    place(head)
  end
end
"""

# ARGV[6..]: per request: fingerprint (8 bytes), dont_filter (1/0), priority, host, pickle.
_ADD = r"""
local added = 0
for i = 6, #ARGV, 5 do
  local fp, priority, host = ARGV[i], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local bucket = P .. 's:' .. string.format('%02x%02x', string.byte(fp, 1, 2))
  local new = redis.call('HSETNX', bucket, string.sub(fp, 3), '')
  if new == 1 then redis.call('HINCRBY', K_COUNT, 'seen', 1) end
  if new == 1 or ARGV[i + 1] == '1' then
    local id = new_id()
    redis.call('HSET', K_REQ, id, ARGV[i + 2] .. ' ' .. host .. ' ' .. ARGV[i + 4])
    enqueue(id, priority, host)
    added = added + 1
  end
end
place_touched()
return added
"""

# ARGV[6] limit, ARGV[7] node, ARGV[8] lease seconds, ARGV[9] lead.
# Returns {reclaimed, id1, pickle1, ahead1, id2, ...}: ``ahead`` is how far ahead of
# now the start reserved for the request is.
_TAKE = r"""
local limit, node, expiry = tonumber(ARGV[6]), ARGV[7], now + tonumber(ARGV[8])
soon = now + tonumber(ARGV[9])
local out = {reclaim()}
wake_up()
local taken, visits = 0, 0
while taken < limit and visits < limit + SKIP_BUDGET do
  local host = redis.call('ZPOPMIN', K_RING)[1]
  if not host then break end
  visits = visits + 1
  local t = ready_at(host)
  if t ~= nil and t <= soon then
    local id = redis.call('ZPOPMIN', queue_key(host))[1]
    local at = math.max(now, t)
    redis.call('HINCRBY', K_COUNT, 'queued', -1)
    redis.call('HINCRBY', host_key(host), 'n', 1)
    if at > now or (tonumber(redis.call('HGET', host_key(host), 'ivl')) or DEFAULT_IVL) > 0 then
      redis.call('HSET', host_key(host), 'claim', id, 'at', at)
    end
    redis.call('ZADD', K_LEASES, expiry, id)
    redis.call('HSET', K_LEASE, id, '1' .. node)
    local _, _, blob = parse(redis.call('HGET', K_REQ, id))
    out[#out + 1] = id
    out[#out + 1] = blob
    out[#out + 1] = string.format('%.6f', at - now)
    taken = taken + 1
  end
  place(host)
end
return out
"""

# ARGV[6] id, ARGV[7] node; or ARGV[6] "", ARGV[8] host: a request from outside the
# frontier (robots.txt, a single fetch). ARGV[9] how late a start may be recorded as
# its reserved time. Returns {the seconds until the request may go on the wire
# (negative: that late), the start recorded, now}; {"0", "", ""} if its lease was lost.
_START = r"""
local id, host, at = ARGV[6], ARGV[8], nil
if id ~= '' then
  if not lease_of(id, ARGV[7]) then return {'0', '', ''} end
  local _, of = parse(redis.call('HGET', K_REQ, id))
  host = of
  local h = redis.call('HMGET', host_key(host), 'claim', 'at')
  if h[1] == id then at = tonumber(h[2]) end
  unclaim(host, id)
end
local h = redis.call('HMGET', host_key(host), 'last', 'ivl')
local last = tonumber(h[1])
-- no start reserved (or the last start moved since, see _LATE): the next free one
if last then at = math.max(at or now, last + (tonumber(h[2]) or DEFAULT_IVL)) end
at = at or now
local start = math.max(at, now - tonumber(ARGV[9]))
if not last or start > last then redis.call('HSET', host_key(host), 'last', start) end
place(host)
return {string.format('%.6f', at - now), string.format('%.6f', start), string.format('%.6f', now)}
"""

# ARGV[6] host, ARGV[7] start: a start went on the wire later than ``start`` recorded
# it (the node was slow to get the reply), and is recorded at ARGV[7] instead.
_LATE = r"""
local host, start = ARGV[6], tonumber(ARGV[7])
local last = tonumber(redis.call('HGET', host_key(host), 'last'))
if not last or start > last then redis.call('HSET', host_key(host), 'last', start) end
place(host)
return 1
"""

# ARGV[6] id, ARGV[7] node, ARGV[8] "0" if it was never sent (its claim goes back).
# Returns 0: lease lost, 1: slot freed, 2: held no slot.
_FETCHED = r"""
local id, node = ARGV[6], ARGV[7]
local v = lease_of(id, node)
if not v then return 0 end
if string.sub(v, 1, 1) ~= '1' then return 2 end
redis.call('HSET', K_LEASE, id, '0' .. node)
local _, host = parse(redis.call('HGET', K_REQ, id))
redis.call('HINCRBY', host_key(host), 'n', -1)
if ARGV[8] == '0' then unclaim(host, id) end
place(host)
return 1
"""

# ARGV[6] id, ARGV[7] node. Returns 0: lease lost, 1: ended.
_DONE = r"""
local v = lease_of(ARGV[6], ARGV[7])
if not v then return 0 end
end_lease(ARGV[6], v)
place_touched()
return 1
"""

# ARGV[6] id, ARGV[7] node, ARGV[8] delay, ARGV[9] priority, ARGV[10] pickle of the
# request to queue (maybe a changed copy). Returns 0: lease lost, 1: queued.
_RETRY = r"""
local v = lease_of(ARGV[6], ARGV[7])
if not v then return 0 end
local _, host = parse(end_lease(ARGV[6], v))
place_touched()
local id = new_id()
redis.call('HSET', K_REQ, id, ARGV[9] .. ' ' .. host .. ' ' .. ARGV[10])
redis.call('ZADD', K_DELAYED, now + math.max(tonumber(ARGV[8]), 0), id)
return 1
"""

# ARGV[6] host, ARGV[7] concurrency, ARGV[8] interval, ARGV[9] pause ("" = unchanged).
_THROTTLE = r"""
local host = ARGV[6]
if ARGV[7] ~= '' then
  redis.call('HSET', host_key(host), 'conc', ARGV[7], 'ivl', ARGV[8])
end
if ARGV[9] ~= '' then
  local until_ = now + tonumber(ARGV[9])
  local current = tonumber(redis.call('HGET', host_key(host), 'pause'))
  if not current or until_ > current then
    redis.call('HSET', host_key(host), 'pause', until_)
  end
end
place(host)
return 1
"""

# ARGV[6] lead. Returns {pending, in_flight, seen, reclaimed, wait ("" = None)}.
_STATUS = r"""
soon = now + tonumber(ARGV[6])
local reclaimed = reclaim()
wake_up()
local wait = ''
if redis.call('ZCARD', K_RING) > 0 then
  wait = '0'
else
  local best = nil
  -- a waiting host is due ``lead`` before its start; a retry when it is due
  for key, from in pairs({[K_WAIT] = soon, [K_DELAYED] = now}) do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if first[2] and (not best or tonumber(first[2]) - from < best) then best = tonumber(first[2]) - from end
  end
  if best then wait = string.format('%.17g', math.max(best, 0)) end
end
local count = redis.call('HMGET', K_COUNT, 'queued', 'seen')
local pending = (tonumber(count[1]) or 0) + redis.call('ZCARD', K_DELAYED)
return {pending, redis.call('ZCARD', K_LEASES), tonumber(count[2]) or 0, reclaimed, wait}
"""

# ARGV[6] node, ARGV[7] lease seconds, ARGV[8..] ids. Returns how many were renewed.
_RENEW = r"""
local node, expiry, renewed = ARGV[6], now + tonumber(ARGV[7]), 0
for i = 8, #ARGV do
  if lease_of(ARGV[i], node) then
    redis.call('ZADD', K_LEASES, 'XX', 'GT', expiry, ARGV[i])
    renewed = renewed + 1
  end
end
return renewed
"""


LOST_MARK = "CRAWL_DATA_LOST"

# KEYS[1] the identity key; ARGV[1] a new identity. A node's first call: a crawl
# that has none yet (a new crawl, or one whose data is gone) gets this one.
_JOIN = r"""
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
"""

_SCRIPTS = (
    ("add", _ADD),
    ("take", _TAKE),
    ("start", _START),
    ("late", _LATE),
    ("fetched", _FETCHED),
    ("done", _DONE),
    ("retry", _RETRY),
    ("throttle", _THROTTLE),
    ("status", _STATUS),
    ("renew", _RENEW),
)


class _Lease:
    """One lease this node holds: the request's id in Redis, whether it still holds
    its host slot, and how far ahead of its ``take`` its start was reserved."""

    __slots__ = ("due", "id", "slot", "started")

    def __init__(self, lease_id: bytes, due: float | None) -> None:
        self.id = lease_id
        self.due = due  # when its reserved start is due (``loop.time()``), if ahead of its take
        self.slot = True
        self.started = False


class _NodeLimiters(HostLimiters):
    """This node's limiters, whose every start of a request the frontier handed out
    is also recorded in Redis (the ``start`` script), for the whole cluster."""

    def __init__(self, interval: float, frontier: RedisFrontier) -> None:
        super().__init__(interval)
        self._frontier = frontier

    async def _started(self, key: str, fingerprint: int | None) -> None:
        await self._frontier._started(key, fingerprint)


class RedisFrontier(SharedFrontier):
    """A `Frontier` in Redis at ``url``, under the keys of ``namespace`` (for example
    ``"crawler:<spider>[:<crawl id>]"``), shared by every node that opens it.

    ``policy`` applies to every host not changed by ``throttle`` (give every node the
    same); its ``interval`` holds for the cluster in Redis and for this node's own
    starts in ``limiters``. ``clock`` returns seconds; ``None`` uses Redis server
    time. Leases last ``lease_seconds`` unless renewed by this node, named
    ``node_id`` (default: host name, process id and a random suffix). ``lead``:
    how many seconds before a host's next start ``take`` may hand it out; ``None``
    learns it from this node's delays (see the module docstring).
    """

    def __init__(
        self,
        url: str,
        namespace: str,
        policy: HostPolicy = DEFAULT_POLICY,
        *,
        clock: Callable[[], float] | None = None,
        lease_seconds: float = 30.0,
        node_id: str | None = None,
        lead: float | None = None,
    ) -> None:
        if not namespace:
            raise ValueError("RedisFrontier needs a non-empty namespace")
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self._where = _redacted(url)
        self._redis = _connect(url, self._where)
        self._policy = policy
        self.limiters: HostLimiters = _NodeLimiters(policy.interval, self)
        self._clock = clock
        self._lease_seconds = lease_seconds
        self._lead = _Lead(lead)
        self._node = node_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._prefix = f"{{{namespace}}}:"
        self._keys = [self._prefix + name for name in _KEYS]
        self._scripts = {name: self._redis.register_script(_PRELUDE + body) for name, body in _SCRIPTS}
        self._join_script = self._redis.register_script(_JOIN)
        self._crawl: bytes | None = None  # the identity of the crawl this node works on
        self._leases: dict[int, list[_Lease]] = {}  # fingerprint -> this node's leases
        self._reached = False
        self._renewal: asyncio.Task[None] | None = None
        self._reports: set[asyncio.Task[None]] = set()  # late starts on their way (_report_late)
        self._failure: FrontierError | None = None  # final: see _retrying
        self._outage = False

    @property
    def node_id(self) -> str:
        """The name this node's leases carry."""
        return self._node

    async def open(self) -> int:
        """Reach Redis and join the crawl (or start it). A node that crashed leaves
        its leases to expire, for any node to re-queue: none comes back here."""
        if self._crawl is None:
            await self._join()
        return 0

    async def add(self, requests: Sequence[Request]) -> int:
        added = 0
        for start in range(0, len(requests), ADD_BATCH):
            args: list[Any] = []
            for request in requests[start : start + ADD_BATCH]:
                args += (
                    request.fingerprint.to_bytes(8, "big"),
                    b"1" if request.dont_filter else b"0",
                    request.priority,
                    host_key(request.url),
                    _dumps(request),
                )
            added += int(await self._run("add", args))
        return added

    async def take(self, limit: int) -> list[Request]:
        if limit <= 0:
            return []
        reply = await self._run("take", [limit, self._node, self._lease_seconds, self._lead.seconds])
        self._log_reclaimed(reply[0])
        taken = []
        now = asyncio.get_running_loop().time()
        for lease_id, blob, ahead in zip(reply[1::3], reply[2::3], reply[3::3], strict=True):
            request: Request = pickle.loads(blob)
            due = now + float(ahead) if float(ahead) > 0 else None
            self._leases.setdefault(request.fingerprint, []).append(_Lease(lease_id, due))
            taken.append(request)
        if taken:
            self._start_renewal()
        return taken

    async def fetched(self, request: Request, *, sent: bool = True) -> None:
        lease = next((x for x in self._leases.get(request.fingerprint, ()) if x.slot), None)
        if lease is None:
            raise ValueError(f"request holds no host slot: {request.method} {request.url}")
        lease.slot = False
        if not await self._run("fetched", [lease.id, self._node, b"1" if sent else b"0"]):
            _log_lost(request)

    async def done(self, request: Request) -> None:
        lease = self._pop_lease(request)
        if not await self._run("done", [lease.id, self._node]):
            _log_lost(request)

    async def retry(self, request: Request, delay: float) -> None:
        lease = self._pop_lease(request)
        args = [lease.id, self._node, delay, request.priority, _dumps(request)]
        if not await self._run("retry", args):
            _log_lost(request)

    async def throttle(
        self, host: str, *, policy: HostPolicy | None = None, pause: float | None = None
    ) -> None:
        limits: list[Any] = ["", ""] if policy is None else [policy.concurrency, policy.interval]
        if policy is not None:
            self.limiters.set_interval(host, policy.interval)
        await self._run("throttle", [host, *limits, "" if pause is None else pause])

    async def status(self) -> FrontierStatus:
        pending, in_flight, seen, reclaimed, wait = await self._run("status", [self._lead.seconds])
        self._log_reclaimed(reclaimed)
        return FrontierStatus(
            pending=int(pending),
            in_flight=int(in_flight),
            seen=int(seen),
            wait=float(wait) if wait else None,
        )

    async def close(self) -> None:
        """Stop renewing leases and close the connection. Leases still held stay
        in Redis until they expire, and other nodes then crawl their requests."""
        if self._renewal is not None:
            self._renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewal
            self._renewal = None
        await asyncio.gather(*self._reports)
        await self._redis.aclose()

    async def _started(self, host: str, fingerprint: int | None) -> None:
        """A request to ``host`` is about to go on the wire: one of this node's leases
        of ``fingerprint``, or (``None``) one from outside the frontier. Records its
        start for the cluster (see the module docstring) and waits until it is due:
        the ``start`` script is sent as early as the request gets here, so that its
        round trip passes while the request waits anyway."""
        lease = None
        if fingerprint is not None:
            lease = next((x for x in self._leases.get(fingerprint, ()) if not x.started), None)
        if lease is not None:
            lease.started = True
            if lease.due is not None:  # how early or late it got here teaches the lead
                self._lead.learn(lease.due - asyncio.get_running_loop().time())
        args = [b"" if lease is None else lease.id, self._node, host, START_SLACK]
        sent = asyncio.get_running_loop().time()
        wait, recorded, then = await self._run("start", args)
        if float(wait) > 0:
            await asyncio.sleep(float(wait))
        if recorded:
            elapsed = asyncio.get_running_loop().time() - sent
            self._check_late(host, float(recorded), float(then) + elapsed)

    def _check_late(self, host: str, recorded: float, start: float) -> None:
        """The request goes on the wire at ``start`` (at the latest; Redis's clock), and
        Redis recorded ``recorded``. If this node was slow to get there (its event loop
        was busy), tell Redis, without holding the request back, so that the host's
        next start counts from this one, less ``START_SLACK``."""
        if start - START_SLACK > recorded:
            task = asyncio.get_running_loop().create_task(self._late(host, start - START_SLACK))
            self._reports.add(task)
            task.add_done_callback(self._reports.discard)

    async def _late(self, host: str, start: float) -> None:
        with contextlib.suppress(FrontierError):  # final: this node's next call raises it
            await self._run("late", [host, start])

    def _pop_lease(self, request: Request) -> _Lease:
        """Remove one of this node's leases of ``request``, preferring one whose
        slot is freed already (as `MemoryFrontier` counts them)."""
        leases = self._leases.get(request.fingerprint)
        if not leases:
            raise ValueError(f"request is not in flight: {request.method} {request.url}")
        index = next((i for i, lease in enumerate(leases) if not lease.slot), -1)
        lease = leases.pop(index)
        if not leases:
            del self._leases[request.fingerprint]
        return lease

    async def _run(self, script: str, args: list[Any]) -> Any:
        """Run one script, retrying with backoff while the connection is down."""
        if self._crawl is None:
            await self._join()
        return await self._retrying(
            lambda: self._scripts[script](keys=self._keys, args=self._common_args() + args)
        )

    async def _join(self) -> None:
        """Learn the crawl's identity, or give a new crawl one. Every later script
        checks it: a Redis that lost its data (``FLUSHALL``, a restart without
        persistence) no longer has it, and the scripts refuse to go on."""
        identity = uuid.uuid4().hex.encode()
        self._crawl = await self._retrying(
            lambda: self._join_script(keys=[self._prefix + "id"], args=[identity])
        )

    # -- shared by the nodes of a crawl: robots.txt answers, statistics ---------------

    async def shared_get(self, key: str) -> bytes | None:
        value = await self._retrying(lambda: self._redis.get(self._prefix + "x:" + key))
        return value if isinstance(value, bytes) else None

    async def shared_set(self, key: str, value: bytes, ttl: float) -> None:
        await self._retrying(lambda: self._redis.set(self._prefix + "x:" + key, value, px=int(ttl * 1000)))

    async def add_stats(self, counts: Mapping[str, int]) -> None:
        """Add a node's counters to the crawl's totals (the hash ``K stats``)."""
        if counts:
            key = self._prefix + "stats"
            await self._retrying(lambda: self._add_counts(key, counts))

    async def _add_counts(self, key: str, counts: Mapping[str, int]) -> Any:
        async with self._redis.pipeline(transaction=True) as pipe:
            for name, amount in counts.items():
                pipe.hincrby(key, name, amount)
            return await pipe.execute()

    async def _retrying(self, operation: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``operation`` (a Redis call), retrying with backoff while the
        connection is down; any Redis failure becomes ``FrontierError``. The first
        failure is final: every call after it (and every call still retrying) raises
        it at once, so a node whose frontier failed shuts down without waiting again."""
        if self._failure is not None:
            raise self._failure
        try:
            return await self._attempts(operation)
        except FrontierError as exc:
            self._failure = self._failure or exc
            raise self._failure from None

    async def _attempts(self, operation: Callable[[], Awaitable[Any]]) -> Any:
        delays = iter(RECONNECT_DELAYS)
        while self._failure is None:
            try:
                result = await operation()
            except (RedisConnectionError, RedisTimeoutError) as exc:
                delay = next(delays, None) if self._reached else None
                if delay is None:
                    raise self._unreachable(exc) from None
                self._log_outage(exc)
                await asyncio.sleep(delay)
            except RedisError as exc:
                lost = str(exc).startswith(LOST_MARK)
                raise (
                    self._lost() if lost else FrontierError(f"Redis at {self._where} failed: {exc}")
                ) from None
            else:
                self._reached = True
                self._end_outage()
                return result
        raise self._failure

    def _log_outage(self, exc: RedisError) -> None:
        """One warning per outage, however many calls are retrying."""
        if self._outage:
            return
        self._outage = True
        seconds = sum(RECONNECT_DELAYS)
        log.warning(
            "lost the connection to Redis at %s (%s): retrying for %gs", self._where, _reason(exc), seconds
        )

    def _end_outage(self) -> None:
        if self._outage:
            self._outage = False
            log.warning("Redis at %s is back", self._where)

    def _common_args(self) -> list[Any]:
        now = b"" if self._clock is None else self._clock()
        return [self._prefix, now, self._policy.concurrency, self._policy.interval, self._crawl]

    def _lost(self) -> FrontierError:
        return FrontierError(
            f"the crawl's data in Redis at {self._where} is gone (FLUSHALL, or a restart without "
            f"persistence): its queue, seen URLs and leases under {self._prefix}* are lost, so this "
            "node stops rather than finish with pages missing; stop every node, then start them "
            "again to crawl from the start (use appendonly yes to keep a crawl across restarts)"
        )

    def _unreachable(self, exc: RedisError) -> FrontierError:
        if self._reached:
            seconds = sum(RECONNECT_DELAYS)
            return FrontierError(
                f"lost the connection to Redis at {self._where}: {_reason(exc)} (retried for {seconds:g}s)"
            )
        return FrontierError(f"cannot reach Redis at {self._where}: {_reason(exc)}")

    def _start_renewal(self) -> None:
        if self._renewal is None:
            self._renewal = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        """Extend this node's leases every third of a lease, until ``close``."""
        try:
            while True:
                await asyncio.sleep(self._lease_seconds / 3)
                ids = [lease.id for leases in self._leases.values() for lease in leases]
                for start in range(0, len(ids), RENEW_BATCH):
                    batch = ids[start : start + RENEW_BATCH]
                    await self._run("renew", [self._node, self._lease_seconds, *batch])
        except FrontierError as exc:  # final: this node's next call raises it
            log.debug("stopped renewing leases: %s", exc)

    def _log_reclaimed(self, count: int) -> None:
        if count:
            log.warning("re-queued %d requests whose lease expired (a node stopped?)", count)


class _Lead:
    """How far ahead of a host's next start ``take`` hands it out (reserving that
    start), so that the time a node needs from ``take`` to the ``start`` script is
    not added to every interval. Fixed if given; else learnt from each request taken
    ahead: one that gets to its host's limiter late, or less than ``LEAD_EARLY``
    before its start, moves the lead up by part of the shortfall, and one that gets
    there earlier moves it down (a request taken early holds a worker until its
    start)."""

    def __init__(self, fixed: float | None) -> None:
        self.fixed = fixed is not None
        self.seconds = fixed if fixed is not None else LEAD_START

    def learn(self, early: float) -> None:
        """A request taken ahead got to its host's limiter ``early`` seconds before
        its start (negative: that late)."""
        if not self.fixed:
            step = LEAD_GAIN * (LEAD_EARLY - early)
            self.seconds = min(max(self.seconds + step, 0.0), LEAD_MOST)


def _connect(url: str, where: str) -> aioredis.Redis:
    """A client that does not retry on its own (``_run`` does), gives up connecting
    after 5 s and waiting for a reply after 10 s (a script takes milliseconds)."""
    try:
        return aioredis.Redis.from_url(
            url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=5.0, socket_timeout=10.0
        )
    except ValueError as exc:
        raise FrontierError(f"bad Redis URL {where}: {exc}") from exc


def _dumps(request: Request) -> bytes:
    return pickle.dumps(request, protocol=5)


def _log_lost(request: Request) -> None:
    log.warning(
        "lease of %s %s had expired; another node re-queued it and may fetch it again",
        request.method,
        request.url,
    )


def _redacted(url: str) -> str:
    """``url`` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _reason(exc: BaseException) -> str:
    """The operating system's words for why a connection failed, if it gave any
    (``Connection refused``), else the error's own message."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and (cause.errno or cause.strerror):
            if cause.errno and cause.errno > 0:
                return os.strerror(cause.errno)
            return str(cause.strerror)
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__
