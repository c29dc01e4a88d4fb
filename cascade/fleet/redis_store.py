"""The store shared by a fleet of workers: `cascade.fleet.state`'s operations as Lua scripts in Redis.

Redis runs a script as one step, so a check and its update (is there room under the limit? then add) cannot
interleave with another worker's. Each script is the `MemoryStore` method of the same name, line for line; the
tests run one suite against both. Numbers that are not whole go in and out as strings (Redis would truncate a Lua
number to an integer). Every key gets an expiry, so that a Redis shared for long never fills with old windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from cascade.errors import MissingDependencyError
from cascade.fleet.state import BreakerAdmit, BreakerChange, Hold, Refused

# A worker waits this long at most for Redis before carrying on with its own state (`cascade.fleet.fallback`):
# Redis on the local network answers in well under a millisecond.
SOCKET_TIMEOUT_S = 0.5

_ADMIT = """
local state = redis.call('HMGET', KEYS[1], 'open_until', 'probe_until')
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local open_until = tonumber(state[1]) or 0
if open_until == 0 then return {'closed', '0'} end
if now < open_until then return {'open', tostring(open_until - now)} end
local probe_until = tonumber(state[2]) or 0
if now < probe_until then return {'open', tostring(probe_until - now)} end
redis.call('HSET', KEYS[1], 'probe_until', tostring(now + lease))
return {'probe', '0'}
"""

_REPORT = """
local now, failed, failures = tonumber(ARGV[1]), ARGV[2] == '1', tonumber(ARGV[3])
local window, cooldown, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local state = redis.call('HMGET', KEYS[1], 'open_until', 'count', 'since')
local open_until = tonumber(state[1]) or 0
if not failed then
  redis.call('DEL', KEYS[1])
  if open_until > 0 then return 'closed' end
  return ''
end
if open_until > 0 then
  if now < open_until then return '' end
  redis.call('HSET', KEYS[1], 'open_until', tostring(now + cooldown), 'probe_until', '0')
  redis.call('EXPIRE', KEYS[1], ttl)
  return 'reopened'
end
local count, since = tonumber(state[2]) or 0, tonumber(state[3]) or 0
if count == 0 or now - since > window then
  count, since = 1, now
else
  count = count + 1
end
if count < failures then
  redis.call('HSET', KEYS[1], 'count', count, 'since', tostring(since))
  redis.call('EXPIRE', KEYS[1], ttl)
  return ''
end
redis.call('HSET', KEYS[1], 'count', 0, 'since', '0', 'open_until', tostring(now + cooldown), 'probe_until', '0')
redis.call('EXPIRE', KEYS[1], ttl)
return 'opened'
"""

# KEYS: the counters, then the hold's own key; ARGV: the amount, then the limit and the expiry of each counter.
_RESERVE = """
local amount, counters = tonumber(ARGV[1]), #KEYS - 1
for i = 1, counters do
  if tonumber(redis.call('GET', KEYS[i]) or '0') + amount > tonumber(ARGV[2 * i]) then return i end
end
local longest = 0
for i = 1, counters do
  redis.call('INCRBY', KEYS[i], amount)
  redis.call('EXPIRE', KEYS[i], ARGV[2 * i + 1])
  longest = math.max(longest, tonumber(ARGV[2 * i + 1]))
end
redis.call('SET', KEYS[#KEYS], amount, 'EX', longest)
return 0
"""

# KEYS: the counters, then the hold's key; ARGV: the change, then each counter's expiry. A hold that is not there
# (settled already, or never made: its reply was lost) changes nothing.
_SETTLE = """
if redis.call('DEL', KEYS[#KEYS]) == 0 then return 0 end
for i = 1, #KEYS - 1 do
  redis.call('INCRBY', KEYS[i], ARGV[1])
  redis.call('EXPIRE', KEYS[i], ARGV[i + 1])
end
return 1
"""

# KEYS: the counters; ARGV: the amount (may be negative), then the expiry of each counter.
_ADD = """
for i, key in ipairs(KEYS) do
  redis.call('INCRBY', key, ARGV[1])
  redis.call('EXPIRE', key, ARGV[i + 1])
end
return 0
"""

_TAKE = """
local now, capacity, per_s = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, max_wait, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local state = redis.call('HMGET', KEYS[1], 'level', 'at')
local level, at = tonumber(state[1]) or capacity, tonumber(state[2]) or now
level = math.min(capacity, level + math.max(0, now - at) * per_s)
local wait = 0
if level < cost then wait = (cost - level) / per_s end
if wait > max_wait then return {0, '0'} end
redis.call('HSET', KEYS[1], 'level', tostring(level - cost), 'at', tostring(math.max(now, at)))
redis.call('EXPIRE', KEYS[1], ttl)
return {1, tostring(wait)}
"""


def redis_client(url: str) -> Any:
    """A client for the URL (no connection is made until the first call)."""
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        raise MissingDependencyError("state.redis", "redis", "redis") from None
    # One retry: a pooled connection that a Redis restart closed is replaced at once; a Redis that is down is
    # not waited for (the fallback store takes over).
    return redis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1),
    )


def redis_errors() -> tuple[type[Exception], ...]:
    """What a Redis call raises when Redis cannot be used (down, restarting, loading its data, out of memory)."""
    import redis

    return (redis.RedisError, OSError)


def describe(url: str) -> str:
    """Where a Redis URL points, for events and errors: no user name, no password, no query."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path}"


class RedisStore:
    """`MemoryStore`'s operations, run in Redis: every worker pointed at the same Redis shares one state."""

    def __init__(self, client: Any, name: str = "redis") -> None:
        self.client = client
        self.name = name
        # redis-py's Script runs EVALSHA and loads the script again if Redis lost it (a restart).
        self._admit = client.register_script(_ADMIT)
        self._report = client.register_script(_REPORT)
        self._reserve = client.register_script(_RESERVE)
        self._add = client.register_script(_ADD)
        self._settle = client.register_script(_SETTLE)
        self._take = client.register_script(_TAKE)

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        return cls(redis_client(url), name=describe(url))

    def breaker_admit(self, key: str, now: float, lease_s: float) -> tuple[BreakerAdmit, float]:
        state, seconds = self._admit(keys=[key], args=[repr(now), repr(lease_s)])
        admit: BreakerAdmit = state.decode()
        return admit, float(seconds)

    def breaker_report(
        self, key: str, now: float, failed: bool, failures: int, window_s: float, cooldown_s: float
    ) -> BreakerChange:
        ttl = _expiry(max(window_s, cooldown_s))
        args = [repr(now), "1" if failed else "0", failures, repr(window_s), repr(cooldown_s), ttl]
        change: BreakerChange = self._report(keys=[key], args=args).decode()
        return change

    def reserve(
        self, keys: Sequence[str], limits: Sequence[int], ttls: Sequence[int], nanos: int, hold_key: str
    ) -> Hold | Refused:
        args: list[int] = [nanos]
        for limit, ttl in zip(limits, ttls, strict=True):
            args += [limit, ttl]
        refused = int(self._reserve(keys=[*keys, hold_key], args=args))
        if refused:
            return Refused(refused - 1)
        return Hold(tuple(keys), tuple(ttls), nanos, self.name, hold_key)

    def settle(self, hold: Hold, nanos: int) -> None:
        self._settle(keys=[*hold.keys, hold.key], args=[nanos - hold.nanos, *hold.ttls])

    def add(self, keys: Sequence[str], ttls: Sequence[int], nanos: int) -> None:
        """Add to spend counters, whatever their limits."""
        if keys and nanos:
            self._add(keys=list(keys), args=[nanos, *ttls])

    def take(self, key: str, now: float, capacity: float, per_s: float, cost: float, max_wait_s: float) -> float | None:
        ttl = _expiry(capacity / per_s)
        args = [repr(now), repr(capacity), repr(per_s), repr(cost), repr(min(max_wait_s, 1e9)), ttl]
        taken, wait = self._take(keys=[key], args=args)
        return float(wait) if int(taken) else None


def _expiry(seconds: float) -> int:
    """A key's expiry: what it must outlive, plus an hour for calls still in flight."""
    return int(seconds) + 3600
