# Copyright (C) nginx-gw authors
# gw_trace: tracestate, combined across headers, validated, capped and
# truncated by whole members; dropped with an invalid traceparent.

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

=== TEST 1: tracestate is inherited with a valid traceparent
--- more_headers
traceparent: 00-12345678901234567890123456789012-1234567890123456-00
tracestate: foo=1,bar=2
--- response_body
traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1,bar=2
x-gw-vars: tid=12345678901234567890123456789012 span=S1 parent=1234567890123456 sampled=0
x-trace-id: 12345678901234567890123456789012



=== TEST 2: several tracestate headers are combined in order, as one
--- more_headers
traceparent: 00-12345678901234567890123456789012-1234567890123456-01
tracestate: foo=1,bar=2
TraceState: rojo=1,congo=2
tracestate: baz=3
--- response_body
traceparent: 00-12345678901234567890123456789012-S1-01
tracestate: foo=1,bar=2,rojo=1,congo=2,baz=3
x-gw-vars: tid=12345678901234567890123456789012 span=S1 parent=1234567890123456 sampled=1
x-trace-id: 12345678901234567890123456789012



=== TEST 3: optional whitespace and empty members are dropped
--- raw_request eval
"GET /t HTTP/1.0\r
traceparent: 00-12345678901234567890123456789012-1234567890123456-01\r
tracestate: foo=1 \t , \t bar=2,\t \tbaz=3,, ,\r
tracestate:\r
tracestate: \t\r
\r
"
--- response_body
traceparent: 00-12345678901234567890123456789012-S1-01
tracestate: foo=1,bar=2,baz=3
x-gw-vars: tid=12345678901234567890123456789012 span=S1 parent=1234567890123456 sampled=1
x-trace-id: 12345678901234567890123456789012



=== TEST 4: all legal key and value characters; leading value blanks kept
--- raw_request eval
"GET /t HTTP/1.0\r
traceparent: 00-12345678901234567890123456789012-1234567890123456-01\r
tracestate: abcdefghijklmnopqrstuvwxyz0123456789_-*/="
. CORE::join('', map { chr } (0x20 .. 0x2b, 0x2d .. 0x3c, 0x3e .. 0x7e)) . "\r
tracestate: t0_-*/\@v-*/=  x\r
\r
"
--- response_body eval
"traceparent: 00-12345678901234567890123456789012-S1-01
tracestate: abcdefghijklmnopqrstuvwxyz0123456789_-*/="
. CORE::join('', map { chr } (0x20 .. 0x2b, 0x2d .. 0x3c, 0x3e .. 0x7e))
. ",t0_-*/\@v-*/=  x
x-gw-vars: tid=12345678901234567890123456789012 span=S1 parent=1234567890123456 sampled=1
x-trace-id: 12345678901234567890123456789012
"



=== TEST 5: invalid members discard the whole tracestate
Keys with blanks, uppercase, dots, bad vendor format; values with "=" or
empty; duplicate keys (in one header or across headers); keys over 256
characters, tenant ids over 241, system ids over 14; values over 256.
--- request eval
[("GET /t") x 17]
--- more_headers eval
[map { "traceparent: 00-12345678901234567890123456789012-1234567890123456-01\ntracestate: $_" }
 "foo =1,bar=2",
 "FOO=1,bar=2",
 "foo.bar=1,bar=2",
 "foo\@=1,bar=2",
 "\@foo=1,bar=2",
 "foo\@\@bar=1,bar=2",
 "foo\@bar\@baz=1,bar=2",
 "bar=2,foo=bar=baz",
 "foo=,bar=3",
 "foo=1,foo=1",
 "foo=1,bar=2\ntracestate: foo=2",
 "foo=1,bar=2,1abc=3",
 "bar=2,foo=1\x01",
 ("z" x 257) . "=1,bar=2",
 ("t" x 242) . "\@v=1,bar=2",
 "t\@" . ("v" x 15) . "=1,bar=2",
 "bar=2,foo=" . ("v" x 257)]
--- response_body eval
[("traceparent: 00-12345678901234567890123456789012-S1-01
x-gw-vars: tid=12345678901234567890123456789012 span=S1 parent=1234567890123456 sampled=1
x-trace-id: 12345678901234567890123456789012
") x 17]



=== TEST 6: the longest legal keys and values are kept
--- request eval
[("GET /t") x 3]
--- more_headers eval
[map { "traceparent: 00-12345678901234567890123456789012-1234567890123456-01\ntracestate: foo=1\ntracestate: $_" }
 ("z" x 256) . "=1",
 ("t" x 241) . "\@" . ("v" x 14) . "=1",
 "bar=" . ("v" x 256)]
--- response_body_like eval
[qr/^tracestate: foo=1,z{256}=1$/m,
 qr/^tracestate: foo=1,t{241}\@v{14}=1$/m,
 qr/^tracestate: foo=1,bar=v{256}$/m]



=== TEST 7: 32 members are kept; more are capped at 32 (last ones dropped)
--- request eval
[("GET /t") x 2]
--- more_headers eval
[map {
    my $n = $_;
    "traceparent: 00-12345678901234567890123456789012-1234567890123456-01\n"
    . CORE::join("\n", map { "tracestate: " . CORE::join(",", map { sprintf "bar%02d=%02d", $_, $_ } @$_) }
                   [1 .. 10], [11 .. 20], [21 .. 30], [31 .. $n])
} 32, 40]
--- response_body eval
[("traceparent: 00-12345678901234567890123456789012-S1-01
tracestate: " . CORE::join(",", map { sprintf "bar%02d=%02d", $_, $_ } 1 .. 32) . "
x-gw-vars: tid=12345678901234567890123456789012 span=S1 parent=1234567890123456 sampled=1
x-trace-id: 12345678901234567890123456789012
") x 2]



=== TEST 8: over 512 characters: members over 128 go first, whole
--- more_headers eval
"traceparent: 00-12345678901234567890123456789012-1234567890123456-01
tracestate: a=" . ("x" x 100) . ",big1=" . ("y" x 200) . ",b=" . ("x" x 100)
. ",big2=" . ("z" x 150) . ",c=" . ("x" x 100) . ",d=" . ("x" x 100)
--- response_body eval
"traceparent: 00-12345678901234567890123456789012-S1-01
tracestate: a=" . ("x" x 100) . ",b=" . ("x" x 100) . ",c=" . ("x" x 100)
. ",d=" . ("x" x 100) . "
x-gw-vars: tid=12345678901234567890123456789012 span=S1 parent=1234567890123456 sampled=1
x-trace-id: 12345678901234567890123456789012
"



=== TEST 9: over 512 characters with small members: dropped from the end
--- more_headers eval
"traceparent: 00-12345678901234567890123456789012-1234567890123456-01
tracestate: " . CORE::join(",", map { "k$_=" . ("v" x 97) } 1 .. 8)
--- response_body eval
"traceparent: 00-12345678901234567890123456789012-S1-01
tracestate: " . CORE::join(",", map { "k$_=" . ("v" x 97) } 1 .. 5) . "
x-gw-vars: tid=12345678901234567890123456789012 span=S1 parent=1234567890123456 sampled=1
x-trace-id: 12345678901234567890123456789012
"



=== TEST 10: tracestate is dropped without a valid traceparent
--- request eval
[("GET /t") x 3]
--- more_headers eval
["tracestate: foo=1,bar=2",
 "traceparent: 00-00000000000000000000000000000000-1234567890123456-01\ntracestate: foo=1",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-01\ntraceparent: 00-12345678901234567890123456789012-1234567890123456-01\ntracestate: foo=1"]
--- response_body eval
[("traceparent: 00-T1-S1-03
x-gw-vars: tid=T1 span=S1 parent= sampled=1
x-trace-id: T1
") x 3]



=== TEST 11: $gw_tracestate holds what is sent upstream
--- config
    location /t {
        gw_trace on;
        return 200 "[$gw_tracestate]\n";
    }
--- request eval
["GET /t", "GET /t"]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-01\ntracestate: a=1 , b=2",
 "tracestate: a=1"]
--- response_body_filters
--- response_body eval
["[a=1,b=2]\n", "[]\n"]
