"""Redis backends (shared by every process): the per-tenant limiter and the budget ledger.

Once a service runs N processes, a limiter in each process's memory admits N times the limit.
Here the state lives in one Redis server and each decision is one Lua script, which Redis runs
atomically: no other command runs between reading the buckets and charging them, so two
processes can never both take the last token.

Time: by default the script reads the *server's* clock (``TIME``), so processes on machines
whose clocks disagree still share one notion of "now". Tests pass ``now`` (e.g. a virtual
clock's ``time``) to drive hours of traffic without sleeping. Since Redis 5, scripts replicate
their effects, not the script, so reading ``TIME`` before writing is allowed.

The script's bucket arithmetic is the course's one token bucket (:mod:`course_utils.token_bucket`),
written in Lua because it must run inside Redis: ``refilled`` (``min(cap, level + elapsed * rate)``,
elapsed never negative) and ``seconds_until`` (admit when ``level + 1e-9 >= demand``, else wait
``(demand - level) / rate``), exactly as :class:`~.memory.MemoryLimiter` applies them in Python;
``tests/test_tenancy_limiter.py`` runs one suite against both.

Keys: ``<prefix>:rl:<tenant>`` (a hash: the three levels and the time of the last refill; it
expires once the buckets would be full again, so idle tenants cost nothing) and
``<prefix>:budget:<tenant>:<period>`` (a hash: spent, reserved, alerted).
"""

from __future__ import annotations

import math
from typing import Any, Callable

from ..concurrency import Demand
from .limiter import DIMENSIONS, Decision, bucket_shape, check_burst, demands
from .plans import Plan

__all__ = ["RedisLimiter", "RedisBudgetStore"]

# KEYS[1]: the tenant's bucket hash. ARGV: now ('' = the server's TIME), mode ('acquire' or
# 'adjust'), then per bucket: capacity, refill per second, demand (acquire) or delta (adjust).
# Returns {allowed (1/0), wait, binding index (0 = none), level1, level2, level3} as strings,
# because Redis truncates Lua numbers to integers.
_BUCKETS_LUA = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[1])
end
local mode = ARGV[2]
local state = redis.call('HMGET', KEYS[1], 't', 'l1', 'l2', 'l3')
local last = tonumber(state[1]) or now
local elapsed = math.max(0, now - last)
local caps, rates, args, levels = {}, {}, {}, {}
local ttl = 0
for i = 1, 3 do
  caps[i] = tonumber(ARGV[3 * i])
  rates[i] = tonumber(ARGV[3 * i + 1])
  args[i] = tonumber(ARGV[3 * i + 2])
  local level = tonumber(state[i + 1]) or caps[i]
  levels[i] = math.min(caps[i], level + elapsed * rates[i])
end
local slack = 1e-9
local allowed, wait, binding = 1, 0, 0
if mode == 'acquire' then
  for i = 1, 3 do
    if args[i] > caps[i] + slack then
      allowed, wait, binding = 0, -1, i
      break
    end
    if levels[i] + slack < args[i] then
      local w = (args[i] - levels[i]) / rates[i]
      allowed = 0
      if w > wait then wait, binding = w, i end
    end
  end
  if allowed == 1 then
    for i = 1, 3 do levels[i] = levels[i] - args[i] end
  end
else
  for i = 1, 3 do levels[i] = math.min(caps[i], levels[i] + args[i]) end
end
for i = 1, 3 do
  if rates[i] > 0 then ttl = math.max(ttl, (caps[i] - levels[i]) / rates[i]) end
end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', math.max(now, last)),
  'l1', string.format('%.17g', levels[1]), 'l2', string.format('%.17g', levels[2]),
  'l3', string.format('%.17g', levels[3]))
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 1000) + 1000)
return {allowed, string.format('%.17g', wait), binding,
  string.format('%.17g', levels[1]), string.format('%.17g', levels[2]), string.format('%.17g', levels[3])}
"""

_NOW_LUA = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[1])
end
"""

# Expired holds (a process that reserved and died) give their money back before anything else.
_PURGE_LUA = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, id in ipairs(expired) do
  local amount = redis.call('HGET', KEYS[2], id)
  if amount then
    redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(amount))
    redis.call('HDEL', KEYS[2], id)
  end
  redis.call('ZREM', KEYS[3], id)
end
"""

# KEYS: the (tenant, period) budget hash, its holds hash (id -> amount), its expiry zset (id -> time).
# ARGV: now ('' = the server's TIME), amount, limit, hold id, hold ttl (s), key ttl (s).
# Returns {ok, spent, reserved}.
_RESERVE_LUA = (
    _NOW_LUA
    + _PURGE_LUA
    + """
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
local amount, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
if spent + reserved + amount > limit then
  return {0, string.format('%d', spent), string.format('%d', reserved)}
end
reserved = redis.call('HINCRBY', KEYS[1], 'reserved', amount)
redis.call('HSET', KEYS[2], ARGV[4], amount)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), ARGV[4])
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[6])) end
return {1, string.format('%d', spent), string.format('%d', reserved)}
"""
)

# KEYS as for reserve. ARGV: now, hold id, actual (to spend), soft threshold, key ttl. Returns
# {spent, first_alert}: first_alert is 1 exactly once per (tenant, period), in whichever process's
# settle crossed the threshold. A hold that already expired releases nothing (it was purged).
_SETTLE_LUA = (
    _NOW_LUA
    + _PURGE_LUA
    + """
local amount = redis.call('HGET', KEYS[2], ARGV[2])
if amount then
  redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(amount))
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
end
local spent = redis.call('HINCRBY', KEYS[1], 'spent', tonumber(ARGV[3]))
local first = 0
if spent >= tonumber(ARGV[4]) and redis.call('HSETNX', KEYS[1], 'alerted', 1) == 1 then first = 1 end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[5])) end
return {string.format('%d', spent), first}
"""
)

# KEYS as for reserve. ARGV: now. Returns {spent, reserved} after purging expired holds.
_USAGE_LUA = (
    _NOW_LUA
    + _PURGE_LUA
    + """
return {redis.call('HGET', KEYS[1], 'spent') or '0', redis.call('HGET', KEYS[1], 'reserved') or '0'}
"""
)

_BUDGET_TTL_S = 100 * 24 * 3600  # a period's totals outlive its month, for the invoice run


def _fmt(x: float) -> str:
    return repr(float(x))


class RedisLimiter:
    """:class:`~.limiter.TenantLimiter` in Redis, one atomic Lua script per decision.

    ``client``: a ``redis.Redis`` (e.g. :func:`course_utils.redis_server.connect`). ``now``: a
    function returning seconds (``None``: the Redis server's clock, the production setting).
    ``prefix`` namespaces the keys so several limiters can share a server.
    """

    def __init__(
        self,
        client: Any,
        *,
        burst_s: float = 60.0,
        now: Callable[[], float] | None = None,
        prefix: str = "tenancy",
    ) -> None:
        self.burst_s = check_burst(burst_s)
        self._client = client
        self._now = now
        self._prefix = prefix
        self._script = client.register_script(_BUCKETS_LUA)

    def _key(self, tenant_id: str) -> str:
        return f"{self._prefix}:rl:{tenant_id}"

    def _run(self, tenant_id: str, plan: Plan, mode: str, args: list[float]) -> list[Any]:
        argv: list[str] = ["" if self._now is None else _fmt(self._now()), mode]
        for (cap, rate), a in zip(bucket_shape(plan, self.burst_s), args):
            argv += [_fmt(cap), _fmt(rate), _fmt(a)]
        return self._script(keys=[self._key(tenant_id)], args=argv)

    def try_acquire(self, tenant_id: str, plan: Plan, demand: Demand) -> Decision:
        allowed, wait, binding, *levels = self._run(tenant_id, plan, "acquire", demands(demand))
        remaining = dict(zip(DIMENSIONS, (float(x) for x in levels)))
        if int(allowed) == 1:
            return Decision(True, remaining=remaining)
        wait_s = float(wait)
        return Decision(
            False,
            retry_after_s=math.inf if wait_s < 0 else wait_s,
            limit=DIMENSIONS[int(binding) - 1],
            remaining=remaining,
        )

    def settle_output(self, tenant_id: str, plan: Plan, expected: int, actual: int) -> None:
        self._run(tenant_id, plan, "adjust", [0.0, 0.0, float(expected) - float(actual)])

    def remaining(self, tenant_id: str, plan: Plan) -> dict[str, float]:
        _, _, _, *levels = self._run(tenant_id, plan, "adjust", [0.0, 0.0, 0.0])
        return dict(zip(DIMENSIONS, (float(x) for x in levels)))

    def reset(self) -> None:
        for key in self._client.scan_iter(match=f"{self._prefix}:rl:*", count=500):
            self._client.delete(key)


class RedisBudgetStore:
    """:class:`~.budget.BudgetStore` in Redis: reserve and settle are Lua scripts, atomic across
    every process sharing the server. Amounts are integer nano-dollars. Holds expire on the
    server's clock (``now`` injects another, for tests), so a process that reserved and died
    gives the money back after ``hold_ttl_s``."""

    def __init__(self, client: Any, *, now: Callable[[], float] | None = None, prefix: str = "tenancy") -> None:
        self._client = client
        self._now = now
        self._prefix = prefix
        self._reserve = client.register_script(_RESERVE_LUA)
        self._settle = client.register_script(_SETTLE_LUA)
        self._usage = client.register_script(_USAGE_LUA)

    def _keys(self, tenant_id: str, period: str) -> list[str]:
        base = f"{self._prefix}:budget:{tenant_id}:{period}"
        return [base, base + ":holds", base + ":expiry"]

    def _time(self) -> str:
        return "" if self._now is None else _fmt(self._now())

    def reserve(
        self, tenant_id: str, period: str, amount: int, limit: int, hold_id: str, hold_ttl_s: float
    ) -> tuple[bool, int, int]:
        ok, spent, reserved = self._reserve(
            keys=self._keys(tenant_id, period),
            args=[self._time(), int(amount), int(limit), hold_id, _fmt(hold_ttl_s), _BUDGET_TTL_S],
        )
        return int(ok) == 1, int(spent), int(reserved)

    def settle(self, tenant_id: str, period: str, hold_id: str, actual: int, soft: int) -> tuple[int, bool]:
        spent, first = self._settle(
            keys=self._keys(tenant_id, period), args=[self._time(), hold_id, int(actual), int(soft), _BUDGET_TTL_S]
        )
        return int(spent), int(first) == 1

    def usage(self, tenant_id: str, period: str) -> tuple[int, int]:
        spent, reserved = self._usage(keys=self._keys(tenant_id, period), args=[self._time()])
        return int(spent), int(reserved)

    def clear(self) -> None:
        for key in self._client.scan_iter(match=f"{self._prefix}:budget:*", count=500):
            self._client.delete(key)
