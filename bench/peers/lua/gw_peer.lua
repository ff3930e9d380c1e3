-- Copyright (C) nginx-gw authors

-- The nginx-gw gateway written the OpenResty way (as Kong's and APISIX's
-- plugins are), with what Debian 12 packages: libnginx-mod-http-lua
-- (LuaJIT), lua-resty-core, lua-resty-lrucache, lua-nginx-redis
-- (lua-resty-redis), lua-nginx-string (lua-resty-string), lua-cjson and
-- lua-luaossl (OpenSSL bindings: RS256 verification).  Used by
-- bench/peers/scenarios/openresty.conf; it does what the four nginx-gw
-- modules do in bench/peers/scenarios/gw-all.conf:
--
--   trace    a valid incoming traceparent keeps its trace id, else a new
--            128-bit random one; a new span id per request; traceparent
--            and X-Trace-ID upstream, X-Trace-ID on the response;
--   auth     Bearer JWT, RS256 only, key id checked, signature by luaossl,
--            exp/nbf with a leeway, "sub" required and sent upstream as
--            X-User-ID; verified tokens cached per worker (LRU, 1024), as
--            gw_auth does; 401 JSON otherwise;
--   limit    a sliding window per X-Client-ID in Redis, one script call
--            (EVALSHA) per request over a kept-alive cosocket, 50 ms
--            timeouts, open on a Redis failure; 429 JSON over the limit;
--   metrics  counters and histogram buckets in a lua_shared_dict, served
--            in the Prometheus text format by metrics().

local cjson = require "cjson.safe"
local base64 = require "ngx.base64"
local lrucache = require "resty.lrucache"
local redis = require "nginx.redis"
local random = require "nginx.random"
local rstring = require "nginx.string"
local digest = require "openssl.digest"
local pkey = require "openssl.pkey"

local ngx = ngx
local var = ngx.var
local byte, find, sub = string.byte, string.find, string.sub
local concat, format = table.concat, string.format
local tonumber, type = tonumber, type
local to_hex = rstring.to_hex

local _M = {}

local conf, key, script, script_sha, members
local cache = assert(lrucache.new(1024))

local BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }


-- init_by_lua: c = { key_file, script_file, kid, leeway, redis_port,
-- window, limit, route }
function _M.init(c)
    conf = c
    local f = assert(io.open(c.key_file))
    key = assert(pkey.new(f:read("*a")))
    f:close()
    f = assert(io.open(c.script_file))
    script = f:read("*a")
    f:close()
    script_sha = to_hex(ngx.sha1_bin(script))
    members = 0
end


local function is_hex(s)
    return not find(s, "[^0-9a-f]")
end


local function trace()
    local tp = var.http_traceparent
    local trace_id, flags

    -- version 00 only, lowercase hex, no all-zero ids (as a Level 2
    -- intermediary; more than one header arrives joined and fails here)
    if tp and #tp == 55 and sub(tp, 1, 3) == "00-" and byte(tp, 36) == 45
       and byte(tp, 53) == 45
    then
        local t, p, fl = sub(tp, 4, 35), sub(tp, 37, 52), sub(tp, 54, 55)
        if is_hex(t) and is_hex(p) and is_hex(fl)
           and t ~= "00000000000000000000000000000000"
           and p ~= "0000000000000000"
        then
            trace_id = t
            -- sampled and random kept, other flags zeroed
            flags = format("%02x", tonumber(fl, 16) % 4)
        end
    end

    if not trace_id then
        trace_id = to_hex(random.bytes(16))
        flags = "03"
    end

    var.gw_trace_id = trace_id
    var.gw_traceparent = "00-" .. trace_id .. "-" .. to_hex(random.bytes(8))
                         .. "-" .. flags
end


local function reject(status, body)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    if status == 401 then
        ngx.header["WWW-Authenticate"] =
            'Bearer realm="bench", error="invalid_token"'
    end
    ngx.print(body)
    return ngx.exit(status)
end


local function verify(token)
    local claims = cache:get(token)
    if claims then
        return claims
    end

    local h64, p64, s64 = token:match("^([%w_-]+)%.([%w_-]+)%.([%w_-]+)$")
    if not h64 then
        return nil
    end

    local header = cjson.decode(base64.decode_base64url(h64) or "")
    if type(header) ~= "table" or header.alg ~= "RS256"
       or header.kid ~= conf.kid
    then
        return nil
    end

    claims = cjson.decode(base64.decode_base64url(p64) or "")
    local sig = base64.decode_base64url(s64)
    if type(claims) ~= "table" or not sig then
        return nil
    end

    local d = digest.new("sha256")
    d:update(h64 .. "." .. p64)
    local ok, valid = pcall(key.verify, key, sig, d)
    if not ok or not valid then
        return nil
    end

    local ttl = type(claims.exp) == "number"
                and claims.exp + conf.leeway - ngx.time() or 3600
    if ttl > 0 then
        cache:set(token, claims, ttl)
    end

    return claims
end


local function authenticate(ctx)
    local authz = var.http_authorization
    local token = authz and authz:match("^[Bb]earer +(%S+)$")
    local claims = token and verify(token)
    local now = ngx.time()

    if not claims
       or (claims.exp ~= nil
           and (type(claims.exp) ~= "number"
                or claims.exp + conf.leeway <= now))
       or (claims.nbf ~= nil
           and (type(claims.nbf) ~= "number"
                or claims.nbf - conf.leeway > now))
       or type(claims.sub) ~= "string" or claims.sub == ""
    then
        ctx.auth = token and "invalid" or "missing"
        return reject(401, '{"error":"Unauthorized"}\n')
    end

    ctx.auth = "ok"
    var.gw_user = claims.sub
end


local function limit(ctx)
    local client = var.http_x_client_id
    if not client or client == "" then
        ctx.ratelimit = "skipped"
        return
    end

    local red = redis:new()
    red:set_timeout(50)    -- 0.27 (Debian) has no set_timeouts()

    local ok, err = red:connect("127.0.0.1", conf.redis_port)
    if not ok then
        ngx.log(ngx.ERR, "gw_peer: redis connect: ", err)
        ctx.ratelimit = "error"
        return
    end

    members = members + 1
    local now = ngx.now() * 1000
    local k = "peer:rl:" .. client
    local member = now .. ":" .. ngx.worker.pid() .. ":" .. members

    local res
    res, err = red:evalsha(script_sha, 1, k, now, conf.window, conf.limit,
                           member)
    if not res and err and find(err, "NOSCRIPT", 1, true) then
        res, err = red:eval(script, 1, k, now, conf.window, conf.limit,
                            member)
    end

    if not res then
        ngx.log(ngx.ERR, "gw_peer: redis script: ", err)
        red:close()
        ctx.ratelimit = "error"
        return
    end

    red:set_keepalive(60000, 64)

    if res == 0 then
        ctx.ratelimit = "rejected"
        return reject(429, '{"error":"Too Many Requests"}\n')
    end

    ctx.ratelimit = "passed"
end


-- access_by_lua
function _M.access()
    local ctx = ngx.ctx
    trace()
    authenticate(ctx)
    limit(ctx)
end


local function observe(dict, name, labels, v)
    if not v then
        return
    end

    local le = "+Inf"
    for i = 1, #BUCKETS do
        if v <= BUCKETS[i] then
            le = BUCKETS[i]
            break
        end
    end

    dict:incr(name .. "_bucket{" .. labels .. ',le="' .. le .. '"}', 1, 0)
    dict:incr(name .. "_sum{" .. labels .. "}", v, 0)
end


-- log_by_lua
function _M.log()
    local dict = ngx.shared.gw_metrics
    local ctx = ngx.ctx
    local method = ngx.req.get_method()
    local labels = 'method="' .. method .. '",path="' .. conf.route .. '"'

    dict:incr('gateway_requests_total{' .. labels .. ',status="'
              .. var.status .. '"}', 1, 0)
    observe(dict, "gateway_request_duration_seconds", labels,
            tonumber(var.request_time))

    -- "0.001, 0.002" after retries: the sum, as gw_metrics counts it
    local urt = var.upstream_response_time
    if urt then
        local t
        for v in urt:gmatch("[%d.]+") do
            t = (t or 0) + tonumber(v)
        end
        observe(dict, "gateway_upstream_response_duration_seconds",
                'path="' .. conf.route .. '"', t)
    end

    if ctx.auth then
        dict:incr('gateway_auth_decisions_total{result="' .. ctx.auth
                  .. '"}', 1, 0)
    end

    if ctx.ratelimit then
        dict:incr('gateway_ratelimit_decisions_total{result="'
                  .. ctx.ratelimit .. '"}', 1, 0)
    end
end


-- content_by_lua: the Prometheus text format (buckets as counted, not
-- made cumulative: enough to check the counting, not a full exporter)
function _M.metrics()
    local dict = ngx.shared.gw_metrics
    local keys = dict:get_keys(0)
    table.sort(keys)
    local out = {}
    for i = 1, #keys do
        out[i] = keys[i] .. " " .. tostring(dict:get(keys[i]))
    end
    ngx.header["Content-Type"] = "text/plain; version=0.0.4"
    ngx.say(concat(out, "\n"))
end


return _M
