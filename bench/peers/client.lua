-- Copyright (C) nginx-gw authors

-- wrk client of the peer scenarios (bench/peers/scenarios/*.conf): the
-- same requests for every gateway.  One RS256 token (token_file, set by
-- the scenario before dofile) reused, a traceparent from a traced caller,
-- and 10000 client ids in turn, each far under its limit.

local f = assert(io.open(token_file))
wrk.headers["Authorization"] = "Bearer " .. f:read("*l")
f:close()

wrk.headers["traceparent"] =
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

local i = 0

request = function()
    i = i + 1
    wrk.headers["X-Client-ID"] = "client" .. (i % 10000)
    return wrk.format()
end
