# Copyright (C) nginx-gw authors
# gw_trace: tracestate as W3C Trace Context Level 2 reads it: header lines
# combined, keys of the Level 2 grammar, duplicates kept, more than 32
# members discarded whole, truncated by whole members beyond 512
# characters (also past the 8 KiB input bound); dropped with an invalid
# traceparent.  t/trace-w3c.t mirrors the W3C test suite's own cases.

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
Keys with blanks, uppercase, dots, a first character that is not a letter
or digit; values with "=", empty or with control bytes; a member without
"=" (also in a later line); keys or values over 256 characters.
--- request eval
[("GET /t") x 13]
--- more_headers eval
[map { "traceparent: 00-12345678901234567890123456789012-1234567890123456-01\ntracestate: $_" }
 "foo =1,bar=2",
 "FOO=1,bar=2",
 "foo.bar=1,bar=2",
 "\@foo=1,bar=2",
 "_foo=1,bar=2",
 "*foo=1,bar=2",
 "bar=2,foo=bar=baz",
 "foo=,bar=3",
 "bar=2,foo=1\x01",
 "bar=2,foo\x7f=1",
 "foo=1,bar=2\ntracestate: baz",
 ("z" x 257) . "=1,bar=2",
 "bar=2,foo=" . ("v" x 257)]
--- response_body eval
[("traceparent: 00-12345678901234567890123456789012-S1-01
x-gw-vars: tid=12345678901234567890123456789012 span=S1 parent=1234567890123456 sampled=1
x-trace-id: 12345678901234567890123456789012
") x 13]



=== TEST 6: Level 2 keys: a letter or digit first, "@" anywhere after it
The old tenant@system split is gone: these were invalid under Level 1.
--- request eval
[("GET /t") x 7]
--- more_headers eval
[map { "traceparent: 00-12345678901234567890123456789012-1234567890123456-01\ntracestate: $_" }
 "foo\@=1,bar=2",
 "1abc=3,bar=2",
 "foo\@\@bar=1,bar=2",
 "foo\@bar\@baz=1,bar=2",
 ("t" x 242) . "\@v=1",
 "t\@" . ("v" x 15) . "=1",
 "0=0,9\@-*/_=1"]
--- response_body eval
[map { "traceparent: 00-12345678901234567890123456789012-S1-01
tracestate: $_
x-gw-vars: tid=12345678901234567890123456789012 span=S1 parent=1234567890123456 sampled=1
x-trace-id: 12345678901234567890123456789012
" }
 "foo\@=1,bar=2",
 "1abc=3,bar=2",
 "foo\@\@bar=1,bar=2",
 "foo\@bar\@baz=1,bar=2",
 ("t" x 242) . "\@v=1",
 "t\@" . ("v" x 15) . "=1",
 "0=0,9\@-*/_=1"]



=== TEST 7: duplicate keys are valid and kept as sent (in one line or two)
--- request eval
[("GET /t") x 3]
--- more_headers eval
[map { "traceparent: 00-12345678901234567890123456789012-1234567890123456-01\ntracestate: $_" }
 "foo=1,foo=1",
 "foo=1,foo=2",
 "foo=1,bar=2\ntracestate: foo=3"]
--- response_body_like eval
[qr/^tracestate: foo=1,foo=1$/m,
 qr/^tracestate: foo=1,foo=2$/m,
 qr/^tracestate: foo=1,bar=2,foo=3$/m]



=== TEST 8: the longest legal keys and values are kept
--- request eval
[("GET /t") x 4]
--- more_headers eval
[map { "traceparent: 00-12345678901234567890123456789012-1234567890123456-01\ntracestate: foo=1\ntracestate: $_" }
 ("z" x 256) . "=1",
 ("t" x 241) . "\@" . ("v" x 14) . "=1",
 "a" . ("\@" x 255) . "=1",
 "bar=" . ("v" x 256)]
--- response_body_like eval
[qr/^tracestate: foo=1,z{256}=1$/m,
 qr/^tracestate: foo=1,t{241}\@v{14}=1$/m,
 qr/^tracestate: foo=1,a\@{255}=1$/m,
 qr/^tracestate: foo=1,bar=v{256}$/m]



=== TEST 9: 32 members are kept; 33 or more discard the whole list
--- request eval
[("GET /t") x 3]
--- more_headers eval
[map {
    my $n = $_;
    "traceparent: 00-12345678901234567890123456789012-1234567890123456-01\n"
    . CORE::join("\n", map { "tracestate: " . CORE::join(",", map { sprintf "bar%02d=%02d", $_, $_ } @$_) }
                   [1 .. 10], [11 .. 20], [21 .. 30], [31 .. $n])
} 32, 33, 40]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-01
tracestate: " . CORE::join(",", map { sprintf "bar%02d=%02d", $_, $_ } 1 .. 32) . "
x-gw-vars: tid=12345678901234567890123456789012 span=S1 parent=1234567890123456 sampled=1
x-trace-id: 12345678901234567890123456789012
",
("traceparent: 00-12345678901234567890123456789012-S1-01
x-gw-vars: tid=12345678901234567890123456789012 span=S1 parent=1234567890123456 sampled=1
x-trace-id: 12345678901234567890123456789012
") x 2]



=== TEST 10: lines are combined before counting: 40 lines, 32 members
One member per line, with 8 empty lines among them: 32 members, kept.  The
same 33 members on 33 lines are 33 members: discarded.
--- request eval
[("GET /t") x 2]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-01\n"
 . CORE::join("\n", map { $_ % 5 ? sprintf("tracestate: k%02d=%d", $_, $_) : "tracestate: " } 1 .. 40),
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-01\n"
 . CORE::join("\n", map { sprintf "tracestate: k%02d=%d", $_, $_ } 1 .. 33)]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-01
tracestate: " . CORE::join(",", map { sprintf "k%02d=%d", $_, $_ } grep { $_ % 5 } 1 .. 40) . "
x-gw-vars: tid=12345678901234567890123456789012 span=S1 parent=1234567890123456 sampled=1
x-trace-id: 12345678901234567890123456789012
",
"traceparent: 00-12345678901234567890123456789012-S1-01
x-gw-vars: tid=12345678901234567890123456789012 span=S1 parent=1234567890123456 sampled=1
x-trace-id: 12345678901234567890123456789012
"]



=== TEST 11: a combined value over 8 KiB is parsed up to the bound, then truncated
"a=1,b=2", 16 members of 513 characters on four lines, then "z=9": 8235
bytes combined.  The members that end within 8192 bytes are parsed (not the
last two large ones, nor z=9), then truncated as any list over 512
characters: the large members go first, leaving a and b.
--- more_headers eval
my @m = map { sprintf("k%02d", $_) . ("x" x 253) . "=" . ("v" x 256) } 1 .. 16;
"traceparent: 00-12345678901234567890123456789012-1234567890123456-01
tracestate: a=1,b=2\n"
. CORE::join("", map { "tracestate: " . CORE::join(",", @m[$_ * 4 .. $_ * 4 + 3]) . "\n" } 0 .. 3)
. "tracestate: z=9"
--- response_body
traceparent: 00-12345678901234567890123456789012-S1-01
tracestate: a=1,b=2
x-gw-vars: tid=12345678901234567890123456789012 span=S1 parent=1234567890123456 sampled=1
x-trace-id: 12345678901234567890123456789012



=== TEST 12: over 512 characters: members over 128 go first, whole
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



=== TEST 13: over 512 characters with small members: dropped from the end
--- more_headers eval
"traceparent: 00-12345678901234567890123456789012-1234567890123456-01
tracestate: " . CORE::join(",", map { "k$_=" . ("v" x 97) } 1 .. 8)
--- response_body eval
"traceparent: 00-12345678901234567890123456789012-S1-01
tracestate: " . CORE::join(",", map { "k$_=" . ("v" x 97) } 1 .. 5) . "
x-gw-vars: tid=12345678901234567890123456789012 span=S1 parent=1234567890123456 sampled=1
x-trace-id: 12345678901234567890123456789012
"



=== TEST 14: tracestate is dropped without a valid traceparent
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



=== TEST 15: $gw_tracestate holds what is sent upstream
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
