# Copyright (C) nginx-gw authors
# gw_trace: the plain trace id header (X-Trace-ID by default): accepted ids,
# their mapping onto the W3C trace-id, bad input, the response header.

use FindBin;
use lib "$FindBin::Bin/lib";
use GwEcho;
use GwTest;
use Test::Nginx::Socket 'no_plan';
use Digest::SHA ();

GwEcho::start();

# plain ids that are not a UUID nor 32 hex digits: the gateway maps each
# onto the first 16 bytes of its SHA-256 digest (computed here, in Perl)
our @MAP_IDS = ("abc", "my-request.42_A", "a" x 128, "0",
                "4bf92f35-77b3-4da6-a3ce-929d0e0e473",
                "4BF92F3577B34DA6A3CE929D0E0E47361");

repeat_each(2);
no_shuffle();

GwTest::use_defaults(GwEcho::trace_defaults());

run_tests();

__DATA__

=== TEST 1: a valid plain id is forwarded, returned and logged as is
--- more_headers
X-Trace-ID: my-request.42_A
--- response_body_like eval
qr/^traceparent: 00-T1-S1-01
x-gw-vars: tid=my-request.42_A span=S1 parent= sampled=1
x-trace-id: my-request.42_A
$/
--- response_headers
X-Trace-ID: my-request.42_A



=== TEST 2: ids that are not hex map onto a fixed W3C trace-id
The same id gives the same trace-id on every request (and every gateway).
--- request eval
["GET /t", "GET /t"]
--- more_headers eval
["X-Trace-ID: abc", "X-Trace-ID: abc"]
--- response_body_filters eval
sub {
    my ($t) = $_[0] =~ /^traceparent: 00-([0-9a-f]{32})-[0-9a-f]{16}-01$/m
        or return "no traceparent";
    $main::abc //= $t;
    return $t eq $main::abc ? "same trace-id" : "other trace-id";
}
--- response_body eval
["same trace-id", "same trace-id"]



=== TEST 3: the plain id mapping: the first 16 bytes of SHA-256 of the id
The trace-id sent in traceparent and $gw_w3c_trace_id are the digest
computed independently by Digest::SHA; $gw_trace_id, X-Trace-ID upstream
and on the response keep the id as the client sent it.
--- config
    location /t {
        gw_trace on;
        proxy_set_header X-Gw-Vars "tid=$gw_trace_id w3c=$gw_w3c_trace_id";
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- request eval
[("GET /t") x @main::MAP_IDS]
--- more_headers eval
[map { "X-Trace-ID: $_" } @main::MAP_IDS]
--- response_body_filters eval
sub {
    my %h = map { /^([^:]+):\s*(.*)$/ ? (lc $1 => $2) : () } split /\n/, $_[0];
    (my $tp = $h{traceparent} // '') =~ s/-[0-9a-f]{16}-01$/-S1-01/;
    return "traceparent: $tp\nx-gw-vars: " . ($h{'x-gw-vars'} // '')
           . "\nx-trace-id: " . ($h{'x-trace-id'} // '') . "\n";
}
--- response_body eval
[map { my $h = substr(Digest::SHA::sha256_hex($_), 0, 32);
       "traceparent: 00-$h-S1-01\nx-gw-vars: tid=$_ w3c=$h\nx-trace-id: $_\n" }
 @main::MAP_IDS]
--- response_headers eval
[map { "X-Trace-ID: $_" } @main::MAP_IDS]



=== TEST 4: $gw_w3c_trace_id is always the 32-hex W3C trace-id
A UUID, a traceparent, a new trace: $gw_trace_id is the id as logged and
sent, $gw_w3c_trace_id the trace-id of traceparent.
--- config
    location /t {
        gw_trace on;
        proxy_set_header X-Gw-Vars "tid=$gw_trace_id w3c=$gw_w3c_trace_id";
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- request eval
[("GET /t") x 3]
--- more_headers eval
["X-Trace-ID: 4BF92F35-77B3-4DA6-A3CE-929D0E0E4736",
 "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
 ""]
--- response_body eval
["traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-S1-01
x-gw-vars: tid=4BF92F35-77B3-4DA6-A3CE-929D0E0E4736 w3c=4bf92f3577b34da6a3ce929d0e0e4736
x-trace-id: 4BF92F35-77B3-4DA6-A3CE-929D0E0E4736
",
"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-S1-01
x-gw-vars: tid=4bf92f3577b34da6a3ce929d0e0e4736 w3c=4bf92f3577b34da6a3ce929d0e0e4736
x-trace-id: 4bf92f3577b34da6a3ce929d0e0e4736
",
"traceparent: 00-T1-S1-03
x-gw-vars: tid=T1 w3c=T1
x-trace-id: T1
"]



=== TEST 5: a UUID or 32 hex digits (any case) is the W3C trace-id itself
--- request eval
[("GET /t") x 3]
--- more_headers eval
["X-Trace-ID: 4bf92f35-77b3-4da6-a3ce-929d0e0e4736",
 "X-Trace-ID: 4BF92F35-77B3-4DA6-A3CE-929D0E0E4736",
 "X-Trace-ID: 4BF92F3577B34DA6A3CE929D0E0E4736"]
--- response_body eval
["traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-S1-01
x-gw-vars: tid=4bf92f35-77b3-4da6-a3ce-929d0e0e4736 span=S1 parent= sampled=1
x-trace-id: 4bf92f35-77b3-4da6-a3ce-929d0e0e4736
",
"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-S1-01
x-gw-vars: tid=4BF92F35-77B3-4DA6-A3CE-929D0E0E4736 span=S1 parent= sampled=1
x-trace-id: 4BF92F35-77B3-4DA6-A3CE-929D0E0E4736
",
"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-S1-01
x-gw-vars: tid=4BF92F3577B34DA6A3CE929D0E0E4736 span=S1 parent= sampled=1
x-trace-id: 4BF92F3577B34DA6A3CE929D0E0E4736
"]



=== TEST 6: invalid ids are never propagated, returned or logged
Blanks inside, quotes, "<", control bytes, 129 characters, empty, an all-zero
UUID: each is replaced by a fresh random trace id.
--- http_config
    log_format gwid "id=$gw_trace_id";
--- config
    location /t {
        gw_trace on;
        access_log logs/access.log gwid;
        proxy_set_header X-Gw-Vars "tid=$gw_trace_id span=$gw_span_id";
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- request eval
[("GET /t") x 8]
--- more_headers eval
["X-Trace-ID: abc def",
 "X-Trace-ID: \"abc\"",
 "X-Trace-ID: <script>",
 "X-Trace-ID: abc\x01def",
 "X-Trace-ID: abc\x7fdef",
 "X-Trace-ID: " . ("a" x 129),
 "X-Trace-ID:",
 "X-Trace-ID: 00000000-0000-0000-0000-000000000000"]
--- response_body eval
[("traceparent: 00-T1-S1-03
x-gw-vars: tid=T1 span=S1
x-trace-id: T1
") x 8]
--- response_headers_like eval
[("X-Trace-ID: ^[0-9a-f]{32}\$") x 8]
--- no_access_log eval
# Only strings a random 32-hex id cannot contain by chance: "abc" alone
# turns up in about one fresh id in 140.
["abc ", "\"abc", "script", "abc\\x", "a" x 33, "id=" . ("0" x 32)]



=== TEST 7: 128 characters is the longest id accepted
--- more_headers eval
"X-Trace-ID: " . ("a" x 128)
--- response_headers eval
"X-Trace-ID: " . ("a" x 128)
--- response_body_like eval
qr/^x-trace-id: a{128}$/m



=== TEST 8: CR inside a header value: nginx rejects the request; no leak
--- raw_request eval
"GET /t HTTP/1.1\r
Host: localhost\r
X-Trace-ID: abc\rInjected: 1\r
Connection: close\r
\r
"
--- http_config
    log_format gwid "id=$gw_trace_id status=$status";
--- config
    access_log logs/access.log gwid;
    gw_trace on;
    location /t {
        return 200 "unexpected";
    }
--- error_code: 400
--- response_body_filters
--- response_body_unlike: abc
--- response_headers_like
X-Trace-ID: ^[0-9a-f]{32}$
--- access_log eval
qr/^id=[0-9a-f]{32} status=400$/
--- no_access_log
Injected
--- error_log
client sent invalid header line



=== TEST 9: an LF starts a new header line: the id is "abc", nothing more
--- raw_request eval
"GET /t HTTP/1.0\r\nX-Trace-ID: abc\nInjected: 1\r\n\r\n"
--- response_body_filters eval
sub { CORE::join "", grep { /^(x-trace-id|injected):/i } map { lc($_) . "\n" } split /\n/, $_[0] }
--- response_body
x-trace-id: abc
injected: 1



=== TEST 10: both headers name the same trace: both kept as sent
--- more_headers
X-Trace-ID: 4bf92f35-77b3-4da6-a3ce-929d0e0e4736
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
--- response_body
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-S1-01
x-gw-vars: tid=4bf92f35-77b3-4da6-a3ce-929d0e0e4736 span=S1 parent=00f067aa0ba902b7 sampled=1
x-trace-id: 4bf92f35-77b3-4da6-a3ce-929d0e0e4736
--- response_headers
X-Trace-ID: 4bf92f35-77b3-4da6-a3ce-929d0e0e4736



=== TEST 11: the headers disagree: traceparent wins, the plain id follows it
--- more_headers
X-Trace-ID: other-request
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
--- response_body
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-S1-01
x-gw-vars: tid=4bf92f3577b34da6a3ce929d0e0e4736 span=S1 parent=00f067aa0ba902b7 sampled=1
x-trace-id: 4bf92f3577b34da6a3ce929d0e0e4736
--- response_headers
X-Trace-ID: 4bf92f3577b34da6a3ce929d0e0e4736



=== TEST 12: an invalid traceparent and a valid plain id: the plain id wins
--- more_headers
X-Trace-ID: abc-123
traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01
--- response_body_like eval
qr/^traceparent: 00-T1-S1-01
x-gw-vars: tid=abc-123 span=S1 parent= sampled=1
x-trace-id: abc-123
$/



=== TEST 13: two plain id headers: neither is trusted, one new id is sent
--- more_headers
X-Trace-ID: first
X-Trace-ID: second
--- response_body
traceparent: 00-T1-S1-03
x-gw-vars: tid=T1 span=S1 parent= sampled=1
x-trace-id: T1



=== TEST 14: gw_trace_header names another header (read, sent, returned)
--- config
    location /t {
        gw_trace on;
        gw_trace_header X-Request-ID;
        proxy_set_header X-Gw-Vars "tid=$gw_trace_id";
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- more_headers
X-Request-ID: req-7
X-Trace-ID: ignored-here
--- response_body_filters eval
sub { local $GwEcho::HEADERS = qr/^(?:x-request-id|x-trace-id|x-gw-vars)$/i;
      GwEcho::canon($_[0]) }
--- response_body
x-gw-vars: tid=req-7
x-request-id: req-7
x-trace-id: ignored-here
--- response_headers
X-Request-ID: req-7
!X-Trace-ID



=== TEST 15: gw_trace_response_header off: ids still go upstream
--- config
    location /t {
        gw_trace on;
        gw_trace_response_header off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- response_body
traceparent: 00-T1-S1-03
x-trace-id: T1
--- response_headers
!X-Trace-ID



=== TEST 16: a trace id header from the upstream is replaced, not doubled
--- config
    location /t {
        gw_trace on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/up;
    }
    location /up {
        add_header X-Trace-ID upstream-value;
        add_header X-Trace-ID upstream-value-2;
        return 200 "up\n";
    }
--- more_headers
X-Trace-ID: client-value
--- response_body_filters
--- response_body
up
--- raw_response_headers_like: \r\nX-Trace-ID: client-value\r\n
--- raw_response_headers_unlike: upstream-value



=== TEST 17: gw_trace off (the default): nothing added anywhere
--- config
    location /t {
        proxy_set_header X-Gw-Vars "tid=[$gw_trace_id] tp=[$gw_traceparent]";
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- more_headers
X-Trace-ID: bad id
--- response_body
x-gw-vars: tid=[] tp=[]
x-trace-id: bad id
--- response_headers
!X-Trace-ID
