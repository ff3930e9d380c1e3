# Copyright (C) nginx-gw authors
# gw_trace: span export over OTLP/HTTP.  Every export is decoded by the
# collector stand-in (tools/otlp/collector, python3-protobuf), which lists
# the spans it received; T1/S1... are ids in order of first appearance in
# a block (the echo of what went upstream first), so a span's ids are
# matched with the traceparent sent upstream.

use FindBin;
use lib "$FindBin::Bin/lib";
use GwEcho;
use GwOtlp;
use GwTest;
use Test::Nginx::Socket 'no_plan';
use Digest::SHA ();

GwEcho::start();
GwOtlp::start();

# One run per block: spans live in the collector between requests.  What
# the exporter logs happens after the request that caused it, so blocks
# read the error log with a last request (GET /errlog, canon() keeps its
# "gw_trace:" lines) instead of --- error_log, which looks at each
# request's own lines.
repeat_each(1);
no_shuffle();

@GwEcho::KEEP = @GwEcho::TRACE_IDS;

GwTest::use_defaults(
    modules => ['trace'],
    filter  => \&GwOtlp::canon,
    config  => <<'_EOC_',
    location /t {
        gw_trace on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
_EOC_
    config_append => <<'_EOC_');
    location /spans {
        proxy_pass http://127.0.0.1:$TEST_NGINX_OTLP_PORT;
    }
    location /requests {
        proxy_pass http://127.0.0.1:$TEST_NGINX_OTLP_PORT;
    }
    location = /errlog {
        default_type text/plain;
        alias $TEST_NGINX_SERVROOT/logs/error.log;
    }
_EOC_

run_tests();

__DATA__

=== TEST 1: a new trace: one SERVER span, the span id sent upstream as parent
Semantic-convention attributes, a configured attribute (an empty one is
left out), the resource (service.name, a UUID service.instance.id,
gw_trace_resource_attr) and the scope.
--- http_config
    gw_trace_otlp http://127.0.0.1:$TEST_NGINX_OTLP_PORT/b1/v1/traces
                  batch_size=1;
    gw_trace_service_name gw-test;
    gw_trace_resource_attr deployment.environment test;
--- config
    location /t {
        gw_trace on;
        gw_trace_span_attr app.user $arg_user;
        gw_trace_span_attr app.empty $arg_nothing;
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- request eval
["GET /t?user=alice&secret=1", "GET /spans?path=/b1/v1/traces&n=1"]
--- more_headers eval
["User-Agent: gw-test/1.0", ""]
--- response_body eval
["traceparent: 00-T1-S1-03
x-trace-id: T1
",
"spans: 1

name: GET /t
kind: SPAN_KIND_SERVER
trace_id: T1
span_id: S1
parent_span_id: -
flags: 0x00000103
trace_state: -
status: STATUS_CODE_UNSET
times: ok
attr app.user: \"alice\"
attr client.address: \"127.0.0.1\"
attr gw.upstream.address: \"127.0.0.1:$ENV{TEST_NGINX_ECHO_PORT}\"
attr gw.upstream.response_time: \"N.NNN\"
attr http.request.method: \"GET\"
attr http.response.status_code: 200
attr http.route: \"/t\"
attr network.protocol.version: \"1.1\"
attr server.address: \"localhost\"
attr server.port: $ENV{TEST_NGINX_SERVER_PORT}
attr url.path: \"/t\"
attr url.scheme: \"http\"
attr user_agent.original: \"gw-test/1.0\"
resource deployment.environment: \"test\"
resource service.instance.id: \"UUID\"
resource service.name: \"gw-test\"
scope: ngx_http_gw_trace_module 1.22.1
"]



=== TEST 2: an incoming context: its parent, tracestate, flags; 5xx is an error
The route comes from gw_trace_route; the name is "METHOD route".
--- http_config
    gw_trace_otlp 127.0.0.1:$TEST_NGINX_OTLP_PORT/b2/v1/traces batch_size=1;
--- config
    location /status/ {
        gw_trace on;
        gw_trace_route /status/:code;
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- request eval
["POST /status/503", "GET /spans?path=/b2/v1/traces&n=1"]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-01
tracestate: foo=1,bar=2
Host: api.example:8443", ""]
--- error_code eval
[503, 200]
--- response_body_filters eval
GwOtlp::only(qr/^(?:name|kind|trace_id|span_id|parent_span_id|flags|trace_state|status|attr (?:http|server|url)\S*):/)
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-01
tracestate: foo=1,bar=2
x-trace-id: 12345678901234567890123456789012
",
"spans: 1
name: POST /status/:code
kind: SPAN_KIND_SERVER
trace_id: 12345678901234567890123456789012
span_id: S1
parent_span_id: 1234567890123456
flags: 0x00000301
trace_state: foo=1,bar=2
status: STATUS_CODE_ERROR
attr http.request.method: \"POST\"
attr http.response.status_code: 503
attr http.route: \"/status/:code\"
attr server.address: \"api.example\"
attr server.port: 8443
attr url.path: \"/status/503\"
attr url.scheme: \"http\"
"]



=== TEST 3: two chained gateways: the second span's parent is the first span
--- http_config
    gw_trace_otlp 127.0.0.1:$TEST_NGINX_OTLP_PORT/b3/v1/traces batch_size=1;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location / {
            gw_trace on;
            proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
        }
    }
--- config
    location /t {
        gw_trace on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- request eval
["GET /t", "GET /spans?path=/b3/v1/traces&n=2"]
--- response_body_filters eval
GwOtlp::only(qr/^(?:name|trace_id|span_id|parent_span_id|flags|attr http.route):/)
--- response_body eval
["traceparent: 00-T1-S1-03
x-trace-id: T1
",
"spans: 2
name: GET /
trace_id: T1
span_id: S1
parent_span_id: S2
flags: 0x00000303
attr http.route: \"/\"
name: GET /t
trace_id: T1
span_id: S2
parent_span_id: -
flags: 0x00000103
attr http.route: \"/t\"
"]



=== TEST 4: only sampled traces are exported; an incoming decision is kept
gw_trace_sample off: a new trace is not exported, nor an incoming trace
that is not sampled; an incoming sampled trace is (parent-based).
--- http_config
    gw_trace_otlp 127.0.0.1:$TEST_NGINX_OTLP_PORT/b4/v1/traces batch_size=1;
--- config
    location /t {
        gw_trace on;
        gw_trace_sample off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- request eval
["GET /t", "GET /t", "GET /t", "GET /spans?path=/b4/v1/traces&n=2&wait=1"]
--- more_headers eval
["",
 "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-01",
 ""]
--- response_body_filters eval
GwOtlp::only(qr/^(?:trace_id|parent_span_id):/)
--- response_body eval
["traceparent: 00-T1-S1-02
x-trace-id: T1
",
"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-S2-00
x-trace-id: 4bf92f3577b34da6a3ce929d0e0e4736
",
"traceparent: 00-12345678901234567890123456789012-S3-01
x-trace-id: 12345678901234567890123456789012
",
"spans: 1
trace_id: 12345678901234567890123456789012
parent_span_id: 1234567890123456
"]



=== TEST 5: a ratio for new traces, the same decision on every hop
gw_trace_sample 50%: a trace is sampled when the last 7 bytes of its
trace-id are below 2^55, i.e. byte 9 is below 0x80.  Plain ids map onto
trace-ids by SHA-256 (computed here with Digest::SHA), so the expected
decisions are known in advance.
--- http_config
    gw_trace_otlp 127.0.0.1:$TEST_NGINX_OTLP_PORT/b5/v1/traces batch_size=1;
--- config
    location /t {
        gw_trace on;
        gw_trace_sample 50%;
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- request eval
[(map { "GET /t" } 1 .. 8), "GET /spans?path=/b5/v1/traces&n=8&wait=1"]
--- more_headers eval
[(map { "X-Trace-ID: req-$_" } 1 .. 8), ""]
--- response_body_filters eval
sub {
    return CORE::join "", map { /^(trace_id: .*|spans: \d+)$/ ? "$1\n" : () } split /\n/, $_[0]
        if $_[0] =~ /^spans: /;
    my ($t, $f) = $_[0] =~ /^traceparent: 00-([0-9a-f]{32})-[0-9a-f]{16}-(\d\d)$/m
        or return "no traceparent\n";
    return "$t $f\n";
}
--- response_body eval
my @t = map { substr(Digest::SHA::sha256_hex("req-$_"), 0, 32) } 1 .. 8;
my @s = grep { hex(substr($_, 18, 2)) < 0x80 } @t;
[(map { "$_ " . (hex(substr($_, 18, 2)) < 0x80 ? "01" : "00") . "\n" } @t),
 "spans: " . @s . "\n" . CORE::join("", map { "trace_id: $_\n" } @s)]



=== TEST 6: 503 with Retry-After: retried after the delay, exported once
--- http_config
    gw_trace_otlp 127.0.0.1:$TEST_NGINX_OTLP_PORT/b6/503x1/ra1/v1/traces
                  batch_size=1;
--- request eval
["GET /t", "GET /spans?path=/b6/503x1/ra1/v1/traces&n=1&wait=4",
 "GET /requests?path=/b6/503x1/ra1/v1/traces", "GET /errlog"]
--- response_body_filters eval
GwOtlp::only(qr/^(?:name|trace_id):/)
--- response_body eval
["traceparent: 00-T1-S1-03
x-trace-id: T1
",
"spans: 1
name: GET /t
trace_id: T1
",
"requests: 503 200
",
"[error] gw_trace: otlp export to \"127.0.0.1:PORT/b6/503x1/ra1/v1/traces\": the collector answered 503
"]
--- timeout: 6
--- no_error_log
[alert]
[crit]



=== TEST 7: any other error status is final: not retried, spans dropped
--- http_config
    gw_trace_otlp 127.0.0.1:$TEST_NGINX_OTLP_PORT/b7/400x9/v1/traces
                  batch_size=1;
--- request eval
["GET /t", "GET /spans?path=/b7/400x9/v1/traces&n=1&wait=1.5",
 "GET /requests?path=/b7/400x9/v1/traces", "GET /errlog"]
--- response_body eval
["traceparent: 00-T1-S1-03
x-trace-id: T1
", "spans: 0
", "requests: 400
",
"[error] gw_trace: otlp export to \"127.0.0.1:PORT/b7/400x9/v1/traces\": the collector answered 400
[warn] gw_trace: otlp export to \"127.0.0.1:PORT/b7/400x9/v1/traces\": 1 spans dropped (rejected by the collector), 1 since the worker started
"]
--- no_error_log
[alert]
[crit]



=== TEST 8: no collector: requests are served, spans beyond the queue dropped
Nothing listens on the port: the first span waits for its retry, the next
ones find the queue (one span) full and are dropped and counted.
--- http_config
    gw_trace_otlp 127.0.0.1:$TEST_NGINX_OTLP_DOWN_PORT batch_size=1
                  queue_size=1 timeout=1s;
--- request eval
[("GET /t") x 4, "GET /errlog"]
--- response_body_like eval
[(map { qr/^traceparent: 00-T$_-S$_-03\nx-trace-id: T$_\n\z/ } 1 .. 4),
 qr/^\[error\] gw_trace: otlp export to "127.0.0.1:PORT" failed: (?:connect\(\)|send|recv) failed \(111: Connection refused\)\n(?s:.*)^\[warn\] gw_trace: otlp export to "127.0.0.1:PORT": 1 spans dropped \(queue full\), 1 since the worker started\n/m]
--- no_error_log
[alert]
[crit]



=== TEST 9: a collector that never answers delays no request
The collector accepts and never answers; the export deadline (10 s) is far
longer than the time the test gives each request (2 s of silence).
--- http_config
    gw_trace_otlp 127.0.0.1:$TEST_NGINX_OTLP_BLACKHOLE_PORT batch_size=1
                  timeout=10s;
--- request eval
[("GET /t") x 5, "GET /errlog"]
--- response_body eval
[(map { "traceparent: 00-T$_-S$_-03\nx-trace-id: T$_\n" } 1 .. 5), ""]
--- timeout: 2



=== TEST 10: a collector that never answers: the deadline ends the export
--- http_config
    gw_trace_otlp 127.0.0.1:$TEST_NGINX_OTLP_BLACKHOLE_PORT batch_size=1
                  timeout=300ms;
--- request eval
["GET /t", "GET /spans?path=/none&n=1&wait=1", "GET /errlog"]
--- response_body eval
["traceparent: 00-T1-S1-03
x-trace-id: T1
", "spans: 0
", "[error] gw_trace: otlp export to \"127.0.0.1:PORT\" failed: timed out
"]
--- no_error_log
[alert]
[crit]



=== TEST 11: strings are valid UTF-8 and cut at 1024 bytes
A User-Agent with bytes that are not UTF-8 (each becomes "?"), a valid
two-byte character; an attribute of 2000 characters.
--- http_config
    gw_trace_otlp 127.0.0.1:$TEST_NGINX_OTLP_PORT/b13/v1/traces batch_size=1;
--- config
    location /t {
        gw_trace on;
        gw_trace_span_attr app.long $arg_long;
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- request eval
["GET /t?long=" . ("x" x 2000), "GET /spans?path=/b13/v1/traces&n=1"]
--- more_headers eval
["User-Agent: caf\xc3\xa9 \xff\xfe\xc3(", ""]
--- response_body_filters eval
GwOtlp::only(qr/^attr (?:user_agent|app)/)
--- response_body eval
["traceparent: 00-T1-S1-03
x-trace-id: T1
", "spans: 1
attr app.long: \"" . ("x" x 1024) . "\"
attr user_agent.original: \"caf\xc3\xa9 ???(\"
"]



=== TEST 12: https endpoints are refused
--- http_config
    gw_trace_otlp https://127.0.0.1:4318;
--- config
--- must_die
--- error_log
https is not supported in "https://127.0.0.1:4318"



=== TEST 13: bad gw_trace_otlp parameters
--- http_config
    gw_trace_otlp 127.0.0.1:4318 batch_size=0;
--- config
--- must_die
--- error_log
invalid value "batch_size=0"



=== TEST 14: an unknown gw_trace_otlp parameter is named without its value
--- http_config
    gw_trace_otlp 127.0.0.1:4318 password=secret;
--- config
--- must_die
--- error_log
invalid parameter "password="...



=== TEST 15: queue_size below batch_size
--- http_config
    gw_trace_otlp 127.0.0.1:4318 batch_size=100 queue_size=10;
--- config
--- must_die
--- error_log
queue_size must not be less than batch_size



=== TEST 16: a bad sampling ratio
--- config
    gw_trace_sample 100.5%;
--- must_die
--- error_log
invalid sampling ratio "100.5%"



=== TEST 17: service.name is set with gw_trace_service_name only
--- http_config
    gw_trace_otlp 127.0.0.1:4318;
    gw_trace_resource_attr service.name other;
--- config
--- must_die
--- error_log
"service.name" is set with "gw_trace_service_name"



=== TEST 18: a bad span attribute name
--- config
    gw_trace_span_attr "bad key" $uri;
--- must_die
--- error_log
invalid span attribute name "bad key"



=== TEST 19: duplicate gw_trace_otlp
--- http_config
    gw_trace_otlp 127.0.0.1:4318;
    gw_trace_otlp 127.0.0.1:4319;
--- config
--- must_die
--- error_log
"gw_trace_otlp" directive is duplicate
