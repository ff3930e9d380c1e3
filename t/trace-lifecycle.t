# Copyright (C) nginx-gw authors
# gw_trace: one trace id for the whole life of a request: subrequests,
# internal redirects, early errors, logs, a chain of two gateways; modes
# and configuration errors.

use FindBin;
use lib "$FindBin::Bin/lib";
use GwEcho;
use GwTest;
use Test::Nginx::Socket 'no_plan';

GwEcho::start();

repeat_each(2);
no_shuffle();

GwTest::use_defaults(GwEcho::trace_defaults());

run_tests();

__DATA__

=== TEST 1: auth_request subrequest carries the main request's ids
--- config
    location /t {
        gw_trace on;
        auth_request /auth;
        auth_request_set $auth_saw "$upstream_http_x_echo_x_trace_id $upstream_http_x_echo_traceparent";
        proxy_set_header X-Gw-Auth-Saw $auth_saw;
        proxy_set_header X-Gw-Vars "tid=$gw_trace_id span=$gw_span_id";
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
    location = /auth {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- response_body
traceparent: 00-T1-S1-03
x-gw-auth-saw: T1 00-T1-S1-03
x-gw-vars: tid=T1 span=S1
x-trace-id: T1



=== TEST 2: mirror subrequest carries the main request's ids
--- http_config
    log_format mirror "$uri tid=$gw_trace_id hdr=$http_x_trace_id tp=$http_traceparent span=$gw_span_id";
--- config
    location /t {
        gw_trace on;
        mirror /mirror;
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
    location = /mirror {
        internal;
        log_subrequest on;
        access_log logs/access.log mirror;
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- more_headers
X-Trace-ID: req-mirror-1
--- response_body
traceparent: 00-T1-S1-01
x-trace-id: req-mirror-1
--- wait: 0.1
--- access_log eval
qr{^/mirror tid=req-mirror-1 hdr=req-mirror-1 tp=00-([0-9a-f]{32})-([0-9a-f]{16})-01 span=\2$}



=== TEST 3: internal redirects (error_page, rewrite last, named location)
--- config
    location /t {
        gw_trace on;
        error_page 404 = /second;
        proxy_set_header X-Gw-Vars "first=$gw_trace_id";
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT/status/404;
        proxy_intercept_errors on;
    }
    location /second {
        gw_trace on;
        rewrite ^ /third last;
    }
    location /third {
        gw_trace on;
        try_files /nonexistent @named;
    }
    location @named {
        gw_trace on;
        proxy_set_header X-Gw-Vars "last=$gw_trace_id span=$gw_span_id";
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- response_body
traceparent: 00-T1-S1-03
x-gw-vars: last=T1 span=S1
x-trace-id: T1
--- raw_response_headers_like eval
qr/\r\nX-Trace-ID: [0-9a-f]{32}\r\n/



=== TEST 4: the ids survive a redirect into a location with gw_trace off
--- config
    location /t {
        gw_trace on;
        error_page 418 = @off;
        return 418;
    }
    location @off {
        proxy_set_header X-Gw-Vars "tid=$gw_trace_id span=$gw_span_id";
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- more_headers
X-Trace-ID: before-redirect
--- response_body
traceparent: 00-T1-S1-01
x-gw-vars: tid=before-redirect span=S1
x-trace-id: before-redirect
--- response_headers
X-Trace-ID: before-redirect



=== TEST 5: variables work in any phase and agree with the response header
--- config
    gw_trace on;
    set $early $gw_trace_id;
    location /t {
        add_header X-Early $early;
        add_header X-Late $gw_trace_id;
        return 200 "ok\n";
    }
--- response_body_filters
--- response_body
ok
--- raw_response_headers_like eval
qr/(?s)^(?=.*\r\nX-Trace-ID: ([0-9a-f]{32})\r\n)(?=.*\r\nX-Early: \1\r\n)(?=.*\r\nX-Late: \1\r\n)/



=== TEST 6: a request rejected before the rewrite phase still has its ids
--- http_config
    log_format early "$status tid=$gw_trace_id tp=$gw_traceparent";
--- config
    gw_trace on;
    access_log logs/access.log early;
    location /t {
        return 200;
    }
--- raw_request eval
"GET /t HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"
--- error_code: 400
--- response_body_filters
--- response_body_like: 400 Bad Request
--- access_log eval
qr/^400 tid=([0-9a-f]{32}) tp=00-\1-[0-9a-f]{16}-03$/
--- error_log
client sent duplicate host header



=== TEST 7: a chain of two gateways: the second sees the first's span
--- config
    location /t {
        gw_trace on;
        proxy_set_header X-Gw-Hop1 "span=$gw_span_id";
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location / {
            gw_trace on;
            proxy_set_header X-Gw-Hop2
                "tid=$gw_trace_id parent=$gw_parent_span_id span=$gw_span_id";
            proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
        }
    }
--- response_body
traceparent: 00-T1-S1-03
x-gw-hop1: span=S2
x-gw-hop2: tid=T1 parent=S2 span=S1
x-trace-id: T1



=== TEST 8: the article's log line, plain and JSON
--- http_config
    log_format gw_plain '$gw_trace_id $request_method $uri $status '
                        '$request_time $upstream_addr';
    log_format gw_json escape=json
        '{"trace_id":"$gw_trace_id","method":"$request_method",'
        '"path":"$uri","status":$status,"request_time":$request_time,'
        '"upstream":"$upstream_addr"}';
--- config
    location /t {
        gw_trace on;
        access_log logs/access.log gw_plain;
        access_log logs/access.log gw_json;
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- more_headers
X-Trace-ID: log-line-1
--- response_body
traceparent: 00-T1-S1-01
x-trace-id: log-line-1
--- access_log eval
[qr/^log-line-1 GET \/t 200 \d+\.\d{3} 127\.0\.0\.1:\d+$/,
 qr/^\{"trace_id":"log-line-1","method":"GET","path":"\/t","status":200,"request_time":\d+\.\d{3},"upstream":"127\.0\.0\.1:\d+"\}$/]



=== TEST 9: gw_trace_context extract: incoming ids used, headers untouched
--- config
    location /t {
        gw_trace on;
        gw_trace_context extract;
        proxy_set_header X-Gw-Vars "tid=$gw_trace_id parent=$gw_parent_span_id";
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- more_headers
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
--- response_body
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
x-gw-vars: tid=4bf92f3577b34da6a3ce929d0e0e4736 parent=00f067aa0ba902b7
--- response_headers
X-Trace-ID: 4bf92f3577b34da6a3ce929d0e0e4736



=== TEST 10: gw_trace_context inject: incoming ids ignored and replaced
--- config
    location /t {
        gw_trace on;
        gw_trace_context inject;
        proxy_set_header X-Gw-Vars "tid=$gw_trace_id parent=$gw_parent_span_id";
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- more_headers
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
tracestate: foo=1
X-Trace-ID: from-client
--- response_body
traceparent: 00-T1-S1-03
x-gw-vars: tid=T1 parent=
x-trace-id: T1



=== TEST 11: gw_trace_context ignore: new ids for logs only
--- config
    location /t {
        gw_trace on;
        gw_trace_context ignore;
        proxy_set_header X-Gw-Vars "tid=$gw_trace_id";
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- more_headers
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
--- response_body
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
x-gw-vars: tid=T1



=== TEST 12: gw_trace and gw_trace_header inherit from http level
--- http_config
    gw_trace on;
    gw_trace_header X-Correlation-ID;
--- config
    location /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- response_body_filters eval
sub { local $GwEcho::HEADERS = qr/^(?:x-correlation-id|traceparent)$/i;
      GwEcho::canon($_[0]) }
--- response_body
traceparent: 00-T1-S1-03
x-correlation-id: T1
--- response_headers_like
X-Correlation-ID: ^[0-9a-f]{32}$



=== TEST 13: gw_trace off in a location overrides http level
--- http_config
    gw_trace on;
--- config
    location /off {
        gw_trace off;
        return 200 "[$gw_trace_id]\n";
    }
--- request
GET /off
--- response_body_filters
--- response_body
[]
--- response_headers
!X-Trace-ID



=== TEST 14: bad gw_trace_header
--- config
    location /t {
        gw_trace on;
        gw_trace_header "X Trace";
    }
--- must_die
--- error_log
invalid trace header name "X Trace"



=== TEST 15: gw_trace_header may not name a W3C header
--- config
    gw_trace_header traceparent;
--- must_die
--- error_log
invalid trace header name "traceparent"



=== TEST 16: bad gw_trace_context value
--- config
    gw_trace_context sideways;
--- must_die
--- error_log
invalid value "sideways"



=== TEST 17: bad gw_trace value
--- config
    gw_trace yes;
--- must_die
--- error_log
invalid value "yes" in "gw_trace" directive, it must be "on" or "off"



=== TEST 18: duplicate gw_trace_header
--- config
    gw_trace_header X-A;
    gw_trace_header X-B;
--- must_die
--- error_log
"gw_trace_header" directive is duplicate
