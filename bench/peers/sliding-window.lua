-- Copyright (C) nginx-gw authors

-- The Redis script of the peer gateways' per-client limit (lua/gw_peer.lua
-- and flask_gateway.py load this file): a sliding window log, one sorted
-- set of admitted request times per client, as gw_ratelimit's
-- sliding_window keeps.  KEYS[1]: the client's key; ARGV: now (ms),
-- window (ms), limit, a unique member.  Returns 1 (admitted) or 0.

local k, now, w = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', k, '-inf', now - w)
if redis.call('ZCARD', k) >= tonumber(ARGV[3]) then
    return 0
end
redis.call('ZADD', k, now, ARGV[4])
redis.call('PEXPIRE', k, w)
return 1
