# Copyright (C) nginx-gw authors
# gw_trace: incoming traceparent, processed as a W3C Trace Context Level 2
# intermediary; what goes upstream is checked on a backend that echoes the
# request head it received (t/lib/GwEcho.pm).

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

=== TEST 1: no incoming context: a new random trace, sampled and random flags
--- response_body
traceparent: 00-T1-S1-03
x-gw-vars: tid=T1 span=S1 parent= sampled=1
x-trace-id: T1
--- response_headers_like
X-Trace-ID: ^[0-9a-f]{32}$



=== TEST 2: valid traceparent: same trace, this hop's span becomes the parent
--- more_headers
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
--- response_body
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-S1-01
x-gw-vars: tid=4bf92f3577b34da6a3ce929d0e0e4736 span=S1 parent=00f067aa0ba902b7 sampled=1
x-trace-id: 4bf92f3577b34da6a3ce929d0e0e4736
--- response_headers
X-Trace-ID: 4bf92f3577b34da6a3ce929d0e0e4736



=== TEST 3: header name matched in any case, sent lowercase
--- more_headers
TrAcEpArEnT: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00
--- response_body
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-S1-00
x-gw-vars: tid=4bf92f3577b34da6a3ce929d0e0e4736 span=S1 parent=00f067aa0ba902b7 sampled=0
x-trace-id: 4bf92f3577b34da6a3ce929d0e0e4736



=== TEST 4: flags: sampled and random preserved, unknown flags zeroed
--- request eval
["GET /t", "GET /t", "GET /t", "GET /t"]
--- more_headers eval
["traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02",
 "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
 "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
 "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fc"]
--- response_body eval
["traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-S1-02
x-gw-vars: tid=4bf92f3577b34da6a3ce929d0e0e4736 span=S1 parent=00f067aa0ba902b7 sampled=0
x-trace-id: 4bf92f3577b34da6a3ce929d0e0e4736
",
"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-S1-03
x-gw-vars: tid=4bf92f3577b34da6a3ce929d0e0e4736 span=S1 parent=00f067aa0ba902b7 sampled=1
x-trace-id: 4bf92f3577b34da6a3ce929d0e0e4736
",
"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-S1-03
x-gw-vars: tid=4bf92f3577b34da6a3ce929d0e0e4736 span=S1 parent=00f067aa0ba902b7 sampled=1
x-trace-id: 4bf92f3577b34da6a3ce929d0e0e4736
",
"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-S1-00
x-gw-vars: tid=4bf92f3577b34da6a3ce929d0e0e4736 span=S1 parent=00f067aa0ba902b7 sampled=0
x-trace-id: 4bf92f3577b34da6a3ce929d0e0e4736
"]



=== TEST 5: surrounding blanks (spaces, tabs) are optional whitespace
--- raw_request eval
"GET /t HTTP/1.0\r
traceparent: \t 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 \t\r
\r
"
--- response_body
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-S1-01
x-gw-vars: tid=4bf92f3577b34da6a3ce929d0e0e4736 span=S1 parent=00f067aa0ba902b7 sampled=1
x-trace-id: 4bf92f3577b34da6a3ce929d0e0e4736



=== TEST 6: a future version is parsed as 00 and sent as 00
--- request eval
["GET /t", "GET /t"]
--- more_headers eval
["traceparent: cc-12345678901234567890123456789012-1234567890123456-01",
 "traceparent: cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like"]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-01
x-gw-vars: tid=12345678901234567890123456789012 span=S1 parent=1234567890123456 sampled=1
x-trace-id: 12345678901234567890123456789012
",
"traceparent: 00-12345678901234567890123456789012-S1-01
x-gw-vars: tid=12345678901234567890123456789012 span=S1 parent=1234567890123456 sampled=1
x-trace-id: 12345678901234567890123456789012
"]



=== TEST 7: invalid traceparents restart the trace and are never forwarded
Each one is replaced by a new trace: a fresh random trace-id (T1, never the
incoming one), no parent, flags 03.
--- request eval
[("GET /t") x 22]
--- more_headers eval
[map { "traceparent: $_" }
 "00-12345678901234567890123456789012-1234567890123456-01.",
 "00-12345678901234567890123456789012-1234567890123456-01-future",
 "cc-12345678901234567890123456789012-1234567890123456-01.future",
 "ff-12345678901234567890123456789012-1234567890123456-01",
 ".0-12345678901234567890123456789012-1234567890123456-01",
 "000-12345678901234567890123456789012-1234567890123456-01",
 "0-12345678901234567890123456789012-1234567890123456-01",
 "00-00000000000000000000000000000000-1234567890123456-01",
 "00-12345678901234567890123456789012-0000000000000000-01",
 "00-1234567890123456789012345678901.-1234567890123456-01",
 "00-123456789012345678901234567890123-1234567890123456-01",
 "00-1234567890123456789012345678901-1234567890123456-01",
 "00-12345678901234567890123456789012-123456789012345.-01",
 "00-12345678901234567890123456789012-12345678901234567-01",
 "00-12345678901234567890123456789012-123456789012345-01",
 "00-12345678901234567890123456789012-1234567890123456-.0",
 "00-12345678901234567890123456789012-1234567890123456-001",
 "00-12345678901234567890123456789012-1234567890123456-1",
 "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
 "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
 "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
 "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01"]
--- response_body eval
[("traceparent: 00-T1-S1-03
x-gw-vars: tid=T1 span=S1 parent= sampled=1
x-trace-id: T1
") x 22]



=== TEST 8: more than one traceparent header: both ignored, one new one sent
--- more_headers
traceparent: 00-12345678901234567890123456789011-1234567890123456-01
traceparent: 00-12345678901234567890123456789012-1234567890123456-01
--- response_body
traceparent: 00-T1-S1-03
x-gw-vars: tid=T1 span=S1 parent= sampled=1
x-trace-id: T1



=== TEST 9: a user's proxy_set_header traceparent wins
--- config
    location /t {
        gw_trace on;
        proxy_set_header traceparent "from-config $gw_traceparent";
        proxy_set_header X-Gw-Vars "tid=$gw_trace_id span=$gw_span_id";
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- more_headers
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
--- response_body
traceparent: from-config 00-4bf92f3577b34da6a3ce929d0e0e4736-S1-01
x-gw-vars: tid=4bf92f3577b34da6a3ce929d0e0e4736 span=S1
x-trace-id: 4bf92f3577b34da6a3ce929d0e0e4736



=== TEST 10: every request of a trace gets its own span id
--- config
    location /t {
        gw_trace on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- request eval
[("GET /t") x 3]
--- more_headers
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
--- response_body_filters eval
sub {
    my ($span) = $_[0] =~ /^traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-([0-9a-f]{16})-01$/m
        or return "no traceparent";
    return "parent's span" if $span eq "00f067aa0ba902b7";
    return "seen before" if $main::seen{$span}++;
    return "new span";
}
--- response_body eval
[("new span") x 3]



=== TEST 11: gw_trace_sample off: new traces are not sampled
--- config
    location /t {
        gw_trace on;
        gw_trace_sample off;
        proxy_set_header X-Gw-Vars "sampled=$gw_trace_sampled";
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- response_body
traceparent: 00-T1-S1-02
x-gw-vars: sampled=0
x-trace-id: T1



=== TEST 12: gw_trace_sample with a variable; incoming decisions are kept
--- config
    location /t {
        gw_trace on;
        gw_trace_sample $arg_sample;
        proxy_set_header X-Gw-Vars "sampled=$gw_trace_sampled";
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- request eval
["GET /t?sample=1", "GET /t?sample=0", "GET /t?sample=0"]
--- more_headers eval
["", "",
 "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]
--- response_body eval
["traceparent: 00-T1-S1-03
x-gw-vars: sampled=1
x-trace-id: T1
",
"traceparent: 00-T1-S1-02
x-gw-vars: sampled=0
x-trace-id: T1
",
"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-S1-01
x-gw-vars: sampled=1
x-trace-id: 4bf92f3577b34da6a3ce929d0e0e4736
"]



=== TEST 13: gw_trace_sample from split_clients on $gw_trace_id
The decision may depend on the trace id itself: no recursion, and the flag
sent follows the variable.
--- http_config
    split_clients "$gw_trace_id" $gw_sample {
        50%  on;
        *    off;
    }
--- config
    location /t {
        gw_trace on;
        gw_trace_sample $gw_sample;
        proxy_set_header X-Gw-Vars "sampled=$gw_trace_sampled split=$gw_sample";
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
--- request eval
[("GET /t") x 20]
--- response_body_filters eval
sub {
    my $b = GwEcho::canon($_[0]);
    return "ok" if $b =~ /^traceparent: 00-T1-S1-03\nx-gw-vars: sampled=1 split=on\n/
                || $b =~ /^traceparent: 00-T1-S1-02\nx-gw-vars: sampled=0 split=off\n/;
    return $b;
}
--- response_body eval
[("ok") x 20]
