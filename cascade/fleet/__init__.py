"""A fleet of workers: circuit breakers, spend limits and rate limits shared by every query, in this process or
through Redis for many workers (docs/fleet.md).

- `settings`: the policy's `breaker:`, `limits:` and `state:` sections;
- `state`: the store's atomic operations and the in-process store; `redis_store`: the same in Redis (Lua);
  `fallback`: Redis with the in-process store for when Redis is away;
- `breaker`, `limits`: breakers, spend and rate limits over a store;
- `guard`: `Fleet` (one per `Cascade`) and `QueryFleet` (`ctx.fleet`, all the flow asks of the fleet).

Nothing is imported here: `cascade.policy` imports `settings`, and the engine imports `guard`.
"""
