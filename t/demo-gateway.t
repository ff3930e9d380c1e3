# Copyright (C) nginx-gw authors
# The demo gateway (examples/nginx.conf and examples/backend.conf, as
# t/lib/GwDemo.pm rewrites them for free ports): regressions of the defects
# issue 12 found in it.  The configuration under test is the demo's own.

use FindBin;
use lib "$FindBin::Bin/lib";
use GwDemo;
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();
no_root_location();

# users of their own for every run: the cache and Redis outlive a block
our $Alice = GwDemo::token("alice-$$");
our $Bob = GwDemo::token("bob-$$");
our $Other = GwAuth::gw_token(GwAuth::gw_key('other', 'rsa'), 'RS256',
                              { sub => "alice-$$", exp => time + 3600 },
                              { kid => 'demo' });

my $demo = GwDemo::defaults();
add_block_preprocessor(sub { $demo->(@_) });

run_tests();

__DATA__

=== TEST 1: the users cache: one user's answer never reaches another
--- request eval
["GET /api/users/42", "GET /api/users/42", "GET /api/users/42",
 "GET /api/users/42", "GET /api/users/42?fields=name"]
--- more_headers eval
["Authorization: Bearer $::Alice", "Authorization: Bearer $::Alice",
 "Authorization: Bearer $::Bob", "Authorization: Bearer $::Bob",
 "Authorization: Bearer $::Bob"]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_headers eval
["X-Cache-Status: MISS", "X-Cache-Status: HIT", "X-Cache-Status: MISS",
 "X-Cache-Status: HIT", "X-Cache-Status: BYPASS"]
--- response_body_like eval
[qr/"user":\{"id":42,.*"auth_user":"alice-\d+"\}$/,
 qr/"user":\{"id":42,.*"auth_user":"alice-\d+"\}$/,
 qr/"user":\{"id":42,.*"auth_user":"bob-\d+"\}$/,
 qr/"user":\{"id":42,.*"auth_user":"bob-\d+"\}$/,
 qr/"auth_user":"bob-\d+"\}$/]



=== TEST 2: unknown /api/ routes: 401 without a token, like real ones
--- request eval
["GET /api/unknown", "GET /api/users", "GET /api/no/such/route",
 "GET /api/unknown", "GET /api/userz"]
--- more_headers eval
["", "", "Authorization: Bearer $::Other",
 "Authorization: Bearer $::Alice", "Authorization: Bearer $::Alice"]
--- error_code eval
[401, 401, 401, 404, 404]
--- response_headers eval
['WWW-Authenticate: Bearer realm="api"', 'WWW-Authenticate: Bearer realm="api"',
 'WWW-Authenticate: Bearer realm="api", error="invalid_token"',
 "Content-Type: application/json\n!WWW-Authenticate",
 "Content-Type: application/json"]
--- response_body eval
['{"error":"Unauthorized","reason":"missing"}',
 '{"error":"Unauthorized","reason":"missing"}',
 '{"error":"Unauthorized","reason":"invalid"}',
 qq'{"error":"Not Found"}\n', qq'{"error":"Not Found"}\n']



=== TEST 3: the demo's error log level shows why a token was rejected
--- request eval
["GET /api/orders"]
--- more_headers eval
["Authorization: Bearer $::Other"]
--- error_code: 401
--- error_log
gw_auth: invalid token: signature mismatch, alg "RS256", kid "demo"
--- no_error_log
[error]
[alert]



=== TEST 4: backends echo the trace context they receive, tracestate too
--- request eval
["GET /api/orders"]
--- more_headers eval
["Authorization: Bearer $::Alice
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
tracestate: rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"]
--- error_code: 200
--- response_headers
X-Trace-ID: 4bf92f3577b34da6a3ce929d0e0e4736
--- response_body_like
^\{"service":"order-service","path":"/api/orders","instance":"(?:app\d|canary1)","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01","tracestate":"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE","auth_user":"alice-\d+"\}$



=== TEST 5: the public part of the demo needs no token
--- request
GET /index.html
--- error_code: 200
--- response_body_like
^\{"service":"app","path":"/index.html",.*"auth_user":""\}$
