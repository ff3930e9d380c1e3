--[[
Copyright (C) nginx-gw authors

gw_ratelimit's decision script.  One call decides a batch of requests,
in order, each exactly as if it came alone: a request is checked against
all of its limits and charged to all of them only when all of them admit
it, and it sees what the requests before it in the batch did.  Redis runs
a script atomically, so the limits stay exact across workers and gateway
instances.  Time is Redis's own (TIME, once per call), in microseconds.

The C that writes the arguments and reads the reply is next to this file
(ngx_http_gw_ratelimit_script.c); the module embeds this file from the
generated ngx_http_gw_ratelimit_lua.h ("make script").  Needs Redis 6.2
or later (SET ... PXAT and KEEPTTL, effects replication).

KEYS      the batch's keys, each once; in a Redis Cluster those of one
          hash slot, the others follow ARGV[5] (see there).
ARGV[1]   one byte per key: the number of its limit (1 to 63, below);
          empty for a refund (see there).
ARGV[2]   one byte per request: the number of its limits (1 to 16), plus
          128 when it wants its details even when admitted.
ARGV[3]   one byte per limit of each request, request after request: the
          position of its key in KEYS, from 0.
          ARGV[2] and ARGV[3] are empty in the simple form: every request
          has one limit and a key of its own, and wants no details.
ARGV[4]   an id unique to the batch, for sliding windows (else empty).
ARGV[5]   empty, or, in a Redis Cluster, one byte per key, 1 on the first
          key of a hash slot, 0 on the others; the keys of the batch's
          first slot are KEYS (Redis routes, MOVED and ASK by them), the
          others, on the same node, follow as ARGV[6 ..].  The script
          reads the keys of each slot with an MGET of their own.
ARGV[e+4s+2 .. e+4s+5], e the keys after ARGV[5]
          limit s, four integers:
            gcra            1, interval, tolerance, 0
            fixed_window    2, period, capacity, rate
            sliding_window  3, period, capacity, rate
          interval: the emission interval, period / rate, in whole
          microseconds; tolerance: (burst + 1) * interval; capacity: rate
          + burst; period in microseconds.

The reply, when every request was admitted and none wants details: a
string of one "1" per request.  Otherwise an array: first a string of one
byte per request, "1" admitted, "0" rejected, "E" failed (a key of the
request holds something else; the request is not charged), then, request
after request, an error for each failed request, and five integers per
limit for each rejected request and each admitted one that wants details:

  allowed    1 when this limit admits the request, else 0
  remaining  the requests this limit would admit right now
  reset      milliseconds until it admits one more
  retry      milliseconds until it would admit this request (0: now)
  excess     how far the request is beyond the limit's rate, in
             thousandths of a request (limit_req's "excess"): gcra, the
             requests queued ahead of it; a window, the requests of the
             window before it, plus one, minus the rate.  A limit
             rejects a request whose excess is above its burst.

How each algorithm keeps its state:

gcra      a string key holding the theoretical arrival time "tat" (when
          the client's queue of admitted requests will have drained).  A
          request is admitted when max(tat, now) + interval - now <=
          tolerance, and then tat = max(tat, now) + interval.  Read with
          one MGET for the batch.  A key expires at the end of the second
          "epoch" (2 s) after the one its tat is in; it is rewritten in
          place (INCRBY while the client's queue is not empty, else
          SETRANGE) and only given a new TTL when its tat enters another
          epoch.  Redis seldom updates a TTL, and a client that comes
          back within seconds finds its key rather than Redis expiring
          one and creating another per request.
fixed_window
          a string key holding window * 2^21 + count, expiring at the end
          of the window: counted with INCRBY, set afresh (SET ... PXAT) by
          the first request of a window.  Read with the same MGET.
sliding_window
          a sorted set of the admitted requests' times (member: the
          request's place in the batch and the batch id), trimmed to the
          last period before it is counted; ZADD and PEXPIRE when
          requests are admitted.

Numbers go to Redis as "%d" strings (never through Lua's "%.14g"), and
the strings that many keys share are formatted once per call.
]]

local call, pcall, format = redis.call, redis.pcall, string.format
local floor, ceil = math.floor, math.ceil
local byte, char = string.byte, string.char

local GCRA, FIXED, SLIDING = 1, 2, 3
local EPOCH = 2000000           -- usec, a gcra key's TTL granularity
local SPLIT = 2097152           -- 2^21: window * SPLIT + count
local FOREIGN = 'WRONGTYPE a gw_ratelimit key holds something else'

local now
do
    local t = call('TIME')
    now = tonumber(t[1], 10) * 1000000 + tonumber(t[2], 10)
end

-- A refund (ARGV[1] empty): in a cluster a request whose limits live in
-- several hash slots is decided per slot; when one slot rejects it, the
-- others' charges are taken back.  KEYS: the keys charged; ARGV[2]: one
-- byte per key, its limit; ARGV[3 ..]: per key the sorted set member of
-- a sliding window (else empty); then the limits' arguments.

if ARGV[1] == '' then
    local limit_of = { byte(ARGV[2], 1, -1) }
    local n = #KEYS
    for k = 1, n do
        local key = KEYS[k]
        local a = 2 + n + 4 * limit_of[k] - 3
        local alg = tonumber(ARGV[a], 10)
        if alg == SLIDING then
            pcall('ZREM', key, ARGV[2 + k])
        else
            local v = pcall('GET', key)
            v = type(v) == 'string' and tonumber(v, 10)
            if v and alg == GCRA then
                local t = tonumber(ARGV[a + 1], 10)
                if v - t >= now then
                    pcall('INCRBY', key, '-' .. ARGV[a + 1])
                elseif v > now then
                    pcall('SET', key, format('%d', now), 'KEEPTTL')
                end
            elseif v and floor(v / SPLIT)
                         == floor(now / tonumber(ARGV[a + 1], 10))
                   and v % SPLIT > 0
            then
                pcall('INCRBY', key, '-1')
            end
        end
    end
    return 'R'
end

local key_limit = { byte(ARGV[1], 1, -1) }
local batch_id = ARGV[4]

-- the keys: KEYS, then, in a cluster, those of the node's other slots;
-- "slot_of" numbers the slots of the keys (nil: one slot)

local keys, nkeys, args = KEYS, #KEYS, 5
local slot_of

if ARGV[5] ~= '' then
    local starts = { byte(ARGV[5], 1, -1) }
    nkeys = #starts
    args = 5 + nkeys - #KEYS
    if nkeys > #KEYS then
        keys = { unpack(KEYS) }
        for k = #KEYS + 1, nkeys do
            keys[k] = ARGV[5 + k - #KEYS]
        end
    end
    slot_of = starts
    local n = 0
    for k = 1, nkeys do
        n = n + starts[k]
        slot_of[k] = n
    end
end

-- the values of string keys, one MGET per hash slot

local function mget(list, slots, n)
    if n == 0 then
        return {}
    end
    if slots == nil then
        return call('MGET', unpack(list, 1, n))
    end
    local values, first = {}, 1
    for i = 2, n + 1 do
        if i > n or slots[i] ~= slots[first] then
            local part = call('MGET', unpack(list, first, i - 1))
            for j = first, i - 1 do
                values[j] = part[j - first + 1]
            end
            first = i
        end
    end
    return values
end

-- the limits of the batch

local algorithm, interval, tolerance = {}, {}, {}
local period, capacity, rate, window = {}, {}, {}, {}
local sliding = false

for s = 1, (#ARGV - args) / 4 do
    local a = args + 4 * s - 3
    local alg = tonumber(ARGV[a], 10)
    algorithm[s] = alg

    if alg == GCRA then
        interval[s] = tonumber(ARGV[a + 1], 10)
        tolerance[s] = tonumber(ARGV[a + 2], 10)
    else
        local p = tonumber(ARGV[a + 1], 10)
        period[s] = p
        capacity[s] = tonumber(ARGV[a + 2], 10)
        rate[s] = tonumber(ARGV[a + 3], 10)
        window[s] = floor(now / p)
        if alg == SLIDING then sliding = true end
    end
end

-- The common batch, in a loop of its own: every request has one limit and
-- a key of its own (no key twice), none wants details (ARGV[3] is empty),
-- no sliding window.  When all are admitted the reply is a string of
-- "1"s; otherwise (a rejection, a foreign key) nothing has been written
-- yet and the general path below decides the batch again, from the same
-- reads.

local values
local simple = ARGV[3] == ''

if simple and not sliding then
    values = mget(keys, slot_of, nkeys)

    local fits = true
    local next_state = { byte(ARGV[1], 1, -1) }
    local old_state = { byte(ARGV[1], 1, -1) }

    for k = 1, nkeys do
        local s = key_limit[k]
        local v = values[k]
        local x = 0
        if v then
            v = tonumber(v, 10)
            if v == nil or v >= 2^53 then fits = false; break end
        end
        old_state[k] = v
        if algorithm[s] == GCRA then
            x = now
            if v and v > now then x = v end
            x = x + interval[s]
            if x - now > tolerance[s] then fits = false; break end
        else
            if v and floor(v / SPLIT) == window[s] then x = v % SPLIT end
            if x >= capacity[s] then fits = false; break end
            x = x + 1
        end
        next_state[k] = x
    end

    if fits then
        local shared, epoch_ttl, last_epoch = {}, nil, nil

        for k = 1, nkeys do
            local key, s = keys[k], key_limit[k]
            local x, o = next_state[k], old_state[k]

            if algorithm[s] == GCRA then
                local t = interval[s]
                local epoch = floor(x / EPOCH)

                if o and floor(o / EPOCH) == epoch and o >= now then
                    -- queued: the TTL still covers the new tat
                    call('INCRBY', key, ARGV[args + 4 * s - 2])
                else
                    local v
                    if x == now + t then
                        v = shared[s]
                        if v == nil then
                            v = format('%d', x)
                            shared[s] = v
                        end
                    else
                        v = format('%d', x)
                    end
                    if o and floor(o / EPOCH) == epoch and o >= 1e15 then
                        -- as long as the old value: overwritten in place
                        call('SETRANGE', key, '0', v)
                    else
                        if epoch ~= last_epoch then
                            last_epoch = epoch
                            epoch_ttl = format('%d', (epoch + 2) * EPOCH
                                                     / 1000)
                        end
                        call('SET', key, v, 'PXAT', epoch_ttl)
                    end
                end

            else
                local w = window[s]
                if o and floor(o / SPLIT) == w then
                    call('INCRBY', key, '1')
                else
                    local v = shared[s]
                    if v == nil then
                        v = { format('%d', w * SPLIT + 1),
                              format('%d', (w + 1) * period[s] / 1000) }
                        shared[s] = v
                    end
                    call('SET', key, v[1], 'PXAT', v[2])
                end
            end
        end

        return string.rep('1', nkeys)
    end
end

local requests, refs
if simple then
    requests, refs = {}, {}
    for k = 1, nkeys do
        requests[k] = 1
        refs[k] = k - 1
    end
else
    requests = { byte(ARGV[2], 1, -1) }
    refs = { byte(ARGV[3], 1, -1) }
end

-- every key's state, read once: gcra keys hold the tat, fixed window keys
-- window * SPLIT + count (both read with one MGET), sliding window keys
-- are trimmed and counted; "state" is then kept up to date as requests
-- are charged (arrays made with the keys' size at once)

local state = { byte(ARGV[1], 1, -1) }
local stored = { byte(ARGV[1], 1, -1) }
local charged = { byte(ARGV[1], 1, -1) }
local foreign = {}

if values then
    -- read above
elseif sliding then
    local strings, slots, n = {}, slot_of and {}, 0
    for k = 1, nkeys do
        if algorithm[key_limit[k]] ~= SLIDING then
            n = n + 1
            strings[n] = keys[k]
            if slots then slots[n] = slot_of[k] end
        end
    end
    values = mget(strings, slots, n)
else
    values = mget(keys, slot_of, nkeys)
end

local n = 0
for k = 1, nkeys do
    local s = key_limit[k]
    local alg = algorithm[s]
    local x = 0
    charged[k] = 0
    stored[k] = false

    if alg == SLIDING then
        local t = pcall('ZREMRANGEBYSCORE', keys[k], '-inf',
                        format('%d', now - period[s]))
        if type(t) == 'table' then
            foreign[k] = t.err
        else
            x = call('ZCARD', keys[k])
        end
        stored[k] = x

    else
        n = n + 1
        local v = values[n]
        if v then
            v = tonumber(v, 10)
            if v == nil or v >= 2^53 then
                foreign[k] = FOREIGN
            else
                stored[k] = v
                if alg == GCRA then
                    x = v
                elseif floor(v / SPLIT) == window[s] then
                    x = v % SPLIT
                end
            end
        end
    end

    state[k] = x
end

-- decide the requests in order

local verdicts, nreq = nil, #requests
local detail, ndetail = {}, 0
local members

local r = 1
for q = 1, nreq do
    local first, last = r, r + requests[q] % 128 - 1
    local wants = requests[q] >= 128
    local admit, bad = true, nil

    -- check every limit of the request

    for i = first, last do
        local k = refs[i] + 1
        local s = key_limit[k]
        local x = state[k]

        if foreign[k] then
            bad = foreign[k]
        elseif algorithm[s] == GCRA then
            if x < now then x = now end
            if x + interval[s] - now > tolerance[s] then admit = false end
        elseif x >= capacity[s] then
            admit = false
        end
    end

    if bad or not admit or wants then
        if verdicts == nil then
            verdicts = {}
            for p = 1, q - 1 do verdicts[p] = '1' end
        end
    end

    if bad then
        verdicts[q] = 'E'
        ndetail = ndetail + 1
        detail[ndetail] = { err = bad }

    elseif admit and not wants then

        -- the common case: charge every limit, nothing to report

        if verdicts then verdicts[q] = '1' end

        for i = first, last do
            local k = refs[i] + 1
            local s = key_limit[k]
            local alg = algorithm[s]
            local x = state[k]

            if alg == GCRA then
                if x < now then x = now end
                state[k] = x + interval[s]
            else
                state[k] = x + 1
                if alg == SLIDING then
                    members = members or {}
                    local m = members[k]
                    if m == nil then m = {}; members[k] = m end
                    -- the member: the request's position, the batch id
                    m[#m + 1] = 0
                    m[#m + 1] = char(65 + floor(i / 128), 64 + i % 128)
                                .. batch_id
                end
            end
            charged[k] = charged[k] + 1
        end

    else

        -- rejected, or admitted and wanting details: charge every limit
        -- when admitted, report every limit

        verdicts[q] = admit and '1' or '0'

        for i = first, last do
            local k = refs[i] + 1
            local key, s = keys[k], key_limit[k]
            local alg = algorithm[s]
            local x = state[k]
            local allowed, remaining, reset, retry, excess = 1, 0, 0, 0, 0

            if alg == GCRA then
                local t, tol = interval[s], tolerance[s]
                local tat = x
                if tat < now then tat = now end

                excess = floor((tat - now) * 1000 / t)
                if tat + t - now > tol then allowed = 0 end

                if admit then
                    tat = tat + t
                    state[k] = tat
                end

                local queued = tat - now
                remaining = floor((tol - queued) / t)
                if queued > 0 then
                    reset = queued - floor((queued - 1) / t) * t
                end
                if allowed == 0 then
                    retry = tat + t - now - tol
                end

            else
                local cap, p = capacity[s], period[s]
                excess = (x + 1 - rate[s]) * 1000
                if x >= cap then allowed = 0 end

                if admit then
                    x = x + 1
                    state[k] = x
                end

                remaining = cap - x

                if alg == FIXED then
                    reset = (window[s] + 1) * p - now
                    if allowed == 0 then retry = reset end

                else
                    if admit then
                        members = members or {}
                        local m = members[k]
                        if m == nil then m = {}; members[k] = m end
                        m[#m + 1] = 0
                        m[#m + 1] = char(65 + floor(i / 128),
                                         64 + i % 128) .. batch_id
                    end

                    -- reset: until the oldest request leaves the window;
                    -- retry: until the one whose leaving makes room
                    local before = stored[k]
                    if x > 0 then
                        reset = p
                        if before > 0 then
                            reset = tonumber(call('ZRANGE', key, 0, 0,
                                                  'WITHSCORES')[2])
                                    + p - now
                        end
                    end
                    if allowed == 0 then
                        local c = x - cap
                        retry = p
                        if c < before then
                            retry = tonumber(call('ZRANGE', key, c, c,
                                                  'WITHSCORES')[2])
                                    + p - now
                        end
                    end
                end
            end

            if admit then
                charged[k] = charged[k] + 1
            end

            if excess < 0 then excess = 0 end
            if remaining < 0 then remaining = 0 end
            if reset < 0 then reset = 0 end
            if retry < 0 then retry = 0 end

            detail[ndetail + 1] = allowed
            detail[ndetail + 2] = remaining
            detail[ndetail + 3] = ceil(reset / 1000)
            detail[ndetail + 4] = ceil(retry / 1000)
            detail[ndetail + 5] = excess
            ndetail = ndetail + 5
        end
    end

    r = last + 1
end

-- write what was charged, once per key; the strings that many keys share
-- are formatted once

local next_tat, window_first, window_end, now_string = {}, {}, {}, nil

for k = 1, nkeys do
    local c = charged[k]
    if c > 0 then
        local key, s = keys[k], key_limit[k]
        local alg = algorithm[s]
        local old, x = stored[k], state[k]

        if alg == GCRA then
            local t = interval[s]
            local v
            if x == now + t then
                v = next_tat[s]
                if v == nil then
                    v = format('%d', x)
                    next_tat[s] = v
                end
            end

            local epoch = floor(x / EPOCH)
            if old and floor(old / EPOCH) == epoch then
                -- the key's TTL still covers the new tat
                if not (old >= now
                        and type(pcall('INCRBY', key,
                                       c == 1 and ARGV[args + 4 * s - 2]
                                       or format('%d', c * t)))
                            == 'number')
                then
                    call('SET', key, v or format('%d', x), 'KEEPTTL')
                end
            else
                call('SET', key, v or format('%d', x), 'PXAT',
                     format('%d', (epoch + 2) * EPOCH / 1000))
            end

        elseif alg == FIXED then
            local w = window[s]
            if not (old and floor(old / SPLIT) == w
                    and type(pcall('INCRBY', key, c == 1 and '1'
                                                  or format('%d', c)))
                        == 'number')
            then
                local v
                if x == 1 then
                    v = window_first[s]
                    if v == nil then
                        v = format('%d', w * SPLIT + 1)
                        window_first[s] = v
                    end
                else
                    v = format('%d', w * SPLIT + x)
                end
                local ttl = window_end[s]
                if ttl == nil then
                    ttl = format('%d', (w + 1) * period[s] / 1000)
                    window_end[s] = ttl
                end
                call('SET', key, v, 'PXAT', ttl)
            end

        else
            local m = members[k]
            now_string = now_string or format('%d', now)
            for i = 1, #m, 2 do m[i] = now_string end
            call('ZADD', key, unpack(m))
            call('PEXPIRE', key, format('%d', ceil(period[s] / 1000)))
        end
    end
end

if verdicts == nil then
    return string.rep('1', nreq)
end

return { table.concat(verdicts), unpack(detail, 1, ndetail) }
