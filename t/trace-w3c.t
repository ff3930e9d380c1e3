# Copyright (C) nginx-gw authors
# gw_trace: every case of the W3C Trace Context test suite (w3c/trace-context,
# test/test.py: TraceContextTest, AdvancedTest, TraceContext2Test at
# STRICT_LEVEL=2), mirrored here so CI holds them; each block is named
# after the suite's test.  The suite itself runs through a gateway with
# `make w3c-trace W3C_TRACE_CONTEXT=/path/to/trace-context` (not in CI).
#
# The suite checks the traceparent and tracestate a service sends on after
# receiving the suite's headers; here the service is the gateway and what
# it sends on is what the echo backend (t/lib/GwEcho.pm) received.  The
# expectations are exact where the suite accepts several answers (e.g.
# duplicate tracestate keys are kept as sent).  T1 is a new random
# trace-id, S1 this hop's new span id; the suite's own ids stay literal.

use FindBin;
use lib "$FindBin::Bin/lib";
use GwEcho;
use GwTest;
use Test::Nginx::Socket 'no_plan';

GwEcho::start();

repeat_each(2);
no_shuffle();

@GwEcho::KEEP = @GwEcho::TRACE_IDS;

GwTest::use_defaults(
    modules => ['trace'],
    request => "POST /t",
    filter  => sub {
        local $GwEcho::HEADERS = qr/^(?:traceparent|tracestate)$/i;
        GwEcho::canon($_[0]);
    },
    config  => <<'_EOC_');
    location /t {
        gw_trace on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
    }
_EOC_

run_tests();

__DATA__

=== TEST 1: test_both_traceparent_and_tracestate_missing
a new trace: a valid traceparent with a new trace-id
--- request eval
[("POST /t") x 1]
--- more_headers eval
[""]
--- response_body eval
["traceparent: 00-T1-S1-03
"]



=== TEST 2: test_traceparent_included_tracestate_missing
same trace-id, a new parent-id (this hop's span)
--- request eval
[("POST /t") x 1]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-01"]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-01
"]



=== TEST 3: test_traceparent_duplicated
two traceparent headers: a new trace-id, neither of the two
--- request eval
[("POST /t") x 1]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789011-1234567890123456-01\ntraceparent: 00-12345678901234567890123456789012-1234567890123456-01"]
--- response_body eval
["traceparent: 00-T1-S1-03
"]



=== TEST 4: test_traceparent_header_name
trace-parent and trace.parent are not traceparent: a new trace
--- request eval
[("POST /t") x 2]
--- more_headers eval
["trace-parent: 00-12345678901234567890123456789012-1234567890123456-01",
 "trace.parent: 00-12345678901234567890123456789012-1234567890123456-01"]
--- response_body eval
["traceparent: 00-T1-S1-03
",
"traceparent: 00-T1-S1-03
"]



=== TEST 5: test_traceparent_header_name_valid_casing
the header name in any case
--- request eval
[("POST /t") x 3]
--- more_headers eval
["TraceParent: 00-12345678901234567890123456789012-1234567890123456-01",
 "TrAcEpArEnT: 00-12345678901234567890123456789012-1234567890123456-01",
 "TRACEPARENT: 00-12345678901234567890123456789012-1234567890123456-01"]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-01
",
"traceparent: 00-12345678901234567890123456789012-S1-01
",
"traceparent: 00-12345678901234567890123456789012-S1-01
"]



=== TEST 6: test_traceparent_version_0x00
version 00 with trailing characters is invalid
--- request eval
[("POST /t") x 2]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-01.",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like"]
--- response_body eval
["traceparent: 00-T1-S1-03
",
"traceparent: 00-T1-S1-03
"]



=== TEST 7: test_traceparent_version_0xcc
a future version: its first four fields are used (sent as 00); a suffix must start with "-"
--- request eval
[("POST /t") x 3]
--- more_headers eval
["traceparent: cc-12345678901234567890123456789012-1234567890123456-01",
 "traceparent: cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
 "traceparent: cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like"]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-01
",
"traceparent: 00-12345678901234567890123456789012-S1-01
",
"traceparent: 00-T1-S1-03
"]



=== TEST 8: test_traceparent_version_0xff
version ff is invalid
--- request eval
[("POST /t") x 1]
--- more_headers eval
["traceparent: ff-12345678901234567890123456789012-1234567890123456-01"]
--- response_body eval
["traceparent: 00-T1-S1-03
"]



=== TEST 9: test_traceparent_version_illegal_characters
--- request eval
[("POST /t") x 2]
--- more_headers eval
["traceparent: .0-12345678901234567890123456789012-1234567890123456-01",
 "traceparent: 0.-12345678901234567890123456789012-1234567890123456-01"]
--- response_body eval
["traceparent: 00-T1-S1-03
",
"traceparent: 00-T1-S1-03
"]



=== TEST 10: test_traceparent_version_too_long
--- request eval
[("POST /t") x 2]
--- more_headers eval
["traceparent: 000-12345678901234567890123456789012-1234567890123456-01",
 "traceparent: 0000-12345678901234567890123456789012-1234567890123456-01"]
--- response_body eval
["traceparent: 00-T1-S1-03
",
"traceparent: 00-T1-S1-03
"]



=== TEST 11: test_traceparent_version_too_short
--- request eval
[("POST /t") x 1]
--- more_headers eval
["traceparent: 0-12345678901234567890123456789012-1234567890123456-01"]
--- response_body eval
["traceparent: 00-T1-S1-03
"]



=== TEST 12: test_traceparent_trace_id_all_zero
--- request eval
[("POST /t") x 1]
--- more_headers eval
["traceparent: 00-00000000000000000000000000000000-1234567890123456-01"]
--- response_body eval
["traceparent: 00-T1-S1-03
"]



=== TEST 13: test_traceparent_trace_id_illegal_characters
--- request eval
[("POST /t") x 2]
--- more_headers eval
["traceparent: 00-.2345678901234567890123456789012-1234567890123456-01",
 "traceparent: 00-1234567890123456789012345678901.-1234567890123456-01"]
--- response_body eval
["traceparent: 00-T1-S1-03
",
"traceparent: 00-T1-S1-03
"]



=== TEST 14: test_traceparent_trace_id_too_long
--- request eval
[("POST /t") x 1]
--- more_headers eval
["traceparent: 00-123456789012345678901234567890123-1234567890123456-01"]
--- response_body eval
["traceparent: 00-T1-S1-03
"]



=== TEST 15: test_traceparent_trace_id_too_short
--- request eval
[("POST /t") x 1]
--- more_headers eval
["traceparent: 00-1234567890123456789012345678901-1234567890123456-01"]
--- response_body eval
["traceparent: 00-T1-S1-03
"]



=== TEST 16: test_traceparent_parent_id_all_zero
--- request eval
[("POST /t") x 1]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-0000000000000000-01"]
--- response_body eval
["traceparent: 00-T1-S1-03
"]



=== TEST 17: test_traceparent_parent_id_illegal_characters
--- request eval
[("POST /t") x 2]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-.234567890123456-01",
 "traceparent: 00-12345678901234567890123456789012-123456789012345.-01"]
--- response_body eval
["traceparent: 00-T1-S1-03
",
"traceparent: 00-T1-S1-03
"]



=== TEST 18: test_traceparent_parent_id_too_long
--- request eval
[("POST /t") x 1]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-12345678901234567-01"]
--- response_body eval
["traceparent: 00-T1-S1-03
"]



=== TEST 19: test_traceparent_parent_id_too_short
--- request eval
[("POST /t") x 1]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-123456789012345-01"]
--- response_body eval
["traceparent: 00-T1-S1-03
"]



=== TEST 20: test_traceparent_trace_flags_illegal_characters
--- request eval
[("POST /t") x 2]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-.0",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-0."]
--- response_body eval
["traceparent: 00-T1-S1-03
",
"traceparent: 00-T1-S1-03
"]



=== TEST 21: test_traceparent_trace_flags_too_long
--- request eval
[("POST /t") x 1]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-001"]
--- response_body eval
["traceparent: 00-T1-S1-03
"]



=== TEST 22: test_traceparent_trace_flags_too_short
--- request eval
[("POST /t") x 1]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-1"]
--- response_body eval
["traceparent: 00-T1-S1-03
"]



=== TEST 23: test_traceparent_ows_handling (1/5)
blanks around the value are optional whitespace
--- raw_request eval
"POST /t HTTP/1.0\r\ntraceparent: 00-12345678901234567890123456789012-1234567890123456-01\r\n\r\n"
--- response_body
traceparent: 00-12345678901234567890123456789012-S1-01



=== TEST 24: test_traceparent_ows_handling (2/5)
blanks around the value are optional whitespace
--- raw_request eval
"POST /t HTTP/1.0\r\ntraceparent:\t00-12345678901234567890123456789012-1234567890123456-01\r\n\r\n"
--- response_body
traceparent: 00-12345678901234567890123456789012-S1-01



=== TEST 25: test_traceparent_ows_handling (3/5)
blanks around the value are optional whitespace
--- raw_request eval
"POST /t HTTP/1.0\r\ntraceparent:00-12345678901234567890123456789012-1234567890123456-01 \r\n\r\n"
--- response_body
traceparent: 00-12345678901234567890123456789012-S1-01



=== TEST 26: test_traceparent_ows_handling (4/5)
blanks around the value are optional whitespace
--- raw_request eval
"POST /t HTTP/1.0\r\ntraceparent:00-12345678901234567890123456789012-1234567890123456-01\t\r\n\r\n"
--- response_body
traceparent: 00-12345678901234567890123456789012-S1-01



=== TEST 27: test_traceparent_ows_handling (5/5)
blanks around the value are optional whitespace
--- raw_request eval
"POST /t HTTP/1.0\r\ntraceparent:\t 00-12345678901234567890123456789012-1234567890123456-01 \t\r\n\r\n"
--- response_body
traceparent: 00-12345678901234567890123456789012-S1-01



=== TEST 28: test_tracestate_included_traceparent_missing
tracestate without traceparent is discarded
--- request eval
[("POST /t") x 2]
--- more_headers eval
["tracestate: foo=1",
 "tracestate: foo=1,bar=2"]
--- response_body eval
["traceparent: 00-T1-S1-03
",
"traceparent: 00-T1-S1-03
"]



=== TEST 29: test_tracestate_included_traceparent_included
--- request eval
[("POST /t") x 1]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo=1,bar=2"]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1,bar=2
"]



=== TEST 30: test_tracestate_header_name
trace-state and trace.state are not tracestate
--- request eval
[("POST /t") x 2]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntrace-state: foo=1",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntrace.state: foo=1"]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-00
",
"traceparent: 00-12345678901234567890123456789012-S1-00
"]



=== TEST 31: test_tracestate_header_name_valid_casing
--- request eval
[("POST /t") x 3]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-00\nTraceState: foo=1",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\nTrAcEsTaTe: foo=1",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\nTRACESTATE: foo=1"]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1
",
"traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1
",
"traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1
"]



=== TEST 32: test_tracestate_empty_header
an empty tracestate header is accepted and not sent on
--- request eval
[("POST /t") x 3]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: ",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo=1\ntracestate: ",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: \ntracestate: foo=1"]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-00
",
"traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1
",
"traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1
"]



=== TEST 33: test_tracestate_multiple_headers_different_keys
combined in order
--- request eval
[("POST /t") x 1]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo=1,bar=2\ntracestate: rojo=1,congo=2\ntracestate: baz=3"]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1,bar=2,rojo=1,congo=2,baz=3
"]



=== TEST 34: test_tracestate_duplicated_keys
duplicate keys keep the list (here, as sent)
--- request eval
[("POST /t") x 4]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo=1,foo=1",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo=1,foo=2",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo=1\ntracestate: foo=1",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo=1\ntracestate: foo=2"]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1,foo=1
",
"traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1,foo=2
",
"traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1,foo=1
",
"traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1,foo=2
"]



=== TEST 35: test_tracestate_all_allowed_characters
every key character (with and without "@") and every value character; the value's leading blank is kept
--- request eval
[("POST /t") x 2]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: abcdefghijklmnopqrstuvwxyz0123456789_-*/= !\"#\$%&'()*+-./0123456789:;<>?\@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: abcdefghijklmnopqrstuvwxyz0123456789_-*/\@a-z0-9_-*/= !\"#\$%&'()*+-./0123456789:;<>?\@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: abcdefghijklmnopqrstuvwxyz0123456789_-*/= !\"#\$%&'()*+-./0123456789:;<>?\@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~
",
"traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: abcdefghijklmnopqrstuvwxyz0123456789_-*/\@a-z0-9_-*/= !\"#\$%&'()*+-./0123456789:;<>?\@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~
"]



=== TEST 36: test_tracestate_ows_handling (lists)
blanks around members are optional whitespace
--- request eval
[("POST /t") x 2]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo=1 \t , \t bar=2, \t baz=3",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo=1\t \t,\t \tbar=2,\t \tbaz=3"]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1,bar=2,baz=3
",
"traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1,bar=2,baz=3
"]



=== TEST 37: test_tracestate_ows_handling (1/5)
--- raw_request eval
"POST /t HTTP/1.0\r\ntraceparent:00-12345678901234567890123456789012-1234567890123456-00\r\ntracestate: foo=1\r\n\r\n"
--- response_body
traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1



=== TEST 38: test_tracestate_ows_handling (2/5)
--- raw_request eval
"POST /t HTTP/1.0\r\ntraceparent:00-12345678901234567890123456789012-1234567890123456-00\r\ntracestate:\tfoo=1\r\n\r\n"
--- response_body
traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1



=== TEST 39: test_tracestate_ows_handling (3/5)
--- raw_request eval
"POST /t HTTP/1.0\r\ntraceparent:00-12345678901234567890123456789012-1234567890123456-00\r\ntracestate:foo=1 \r\n\r\n"
--- response_body
traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1



=== TEST 40: test_tracestate_ows_handling (4/5)
--- raw_request eval
"POST /t HTTP/1.0\r\ntraceparent:00-12345678901234567890123456789012-1234567890123456-00\r\ntracestate:foo=1\t\r\n\r\n"
--- response_body
traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1



=== TEST 41: test_tracestate_ows_handling (5/5)
--- raw_request eval
"POST /t HTTP/1.0\r\ntraceparent:00-12345678901234567890123456789012-1234567890123456-00\r\ntracestate:\t foo=1 \t\r\n\r\n"
--- response_body
traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1



=== TEST 42: test_tracestate_key_illegal_characters
the whole list is discarded
--- request eval
[("POST /t") x 3]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo =1",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: FOO=1",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo.bar=1"]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-00
",
"traceparent: 00-12345678901234567890123456789012-S1-00
",
"traceparent: 00-12345678901234567890123456789012-S1-00
"]



=== TEST 43: test_tracestate_key_illegal_vendor_format
"@" may appear anywhere in a key but first
--- request eval
[("POST /t") x 4]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo\@=1,bar=2",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: \@foo=1,bar=2",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo\@\@bar=1,bar=2",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo\@bar\@baz=1,bar=2"]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo\@=1,bar=2
",
"traceparent: 00-12345678901234567890123456789012-S1-00
",
"traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo\@\@bar=1,bar=2
",
"traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo\@bar\@baz=1,bar=2
"]



=== TEST 44: test_tracestate_member_count_limit
32 members on four lines are kept; 33 discard the list
--- request eval
[("POST /t") x 2]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: bar01=01,bar02=02,bar03=03,bar04=04,bar05=05,bar06=06,bar07=07,bar08=08,bar09=09,bar10=10\ntracestate: bar11=11,bar12=12,bar13=13,bar14=14,bar15=15,bar16=16,bar17=17,bar18=18,bar19=19,bar20=20\ntracestate: bar21=21,bar22=22,bar23=23,bar24=24,bar25=25,bar26=26,bar27=27,bar28=28,bar29=29,bar30=30\ntracestate: bar31=31,bar32=32",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: bar01=01,bar02=02,bar03=03,bar04=04,bar05=05,bar06=06,bar07=07,bar08=08,bar09=09,bar10=10\ntracestate: bar11=11,bar12=12,bar13=13,bar14=14,bar15=15,bar16=16,bar17=17,bar18=18,bar19=19,bar20=20\ntracestate: bar21=21,bar22=22,bar23=23,bar24=24,bar25=25,bar26=26,bar27=27,bar28=28,bar29=29,bar30=30\ntracestate: bar31=31,bar32=32,bar33=33"]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: bar01=01,bar02=02,bar03=03,bar04=04,bar05=05,bar06=06,bar07=07,bar08=08,bar09=09,bar10=10,bar11=11,bar12=12,bar13=13,bar14=14,bar15=15,bar16=16,bar17=17,bar18=18,bar19=19,bar20=20,bar21=21,bar22=22,bar23=23,bar24=24,bar25=25,bar26=26,bar27=27,bar28=28,bar29=29,bar30=30,bar31=31,bar32=32
",
"traceparent: 00-12345678901234567890123456789012-S1-00
"]



=== TEST 45: test_tracestate_key_length_limit
keys of up to 256 characters, "@" anywhere
--- request eval
[("POST /t") x 5]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo=1\ntracestate: zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz=1",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo=1\ntracestate: zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz=1",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo=1\ntracestate: ttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt\@vvvvvvvvvvvvvv=1",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo=1\ntracestate: tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt\@v=1",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo=1\ntracestate: t\@vvvvvvvvvvvvvvv=1"]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1,zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz=1
",
"traceparent: 00-12345678901234567890123456789012-S1-00
",
"traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1,ttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt\@vvvvvvvvvvvvvv=1
",
"traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1,tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt\@v=1
",
"traceparent: 00-12345678901234567890123456789012-S1-00
tracestate: foo=1,t\@vvvvvvvvvvvvvvv=1
"]



=== TEST 46: test_tracestate_value_illegal_characters
the whole list is discarded
--- request eval
[("POST /t") x 2]
--- more_headers eval
["traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo=bar=baz",
 "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\ntracestate: foo=,bar=3"]
--- response_body eval
["traceparent: 00-12345678901234567890123456789012-S1-00
",
"traceparent: 00-12345678901234567890123456789012-S1-00
"]



=== TEST 47: test_multiple_requests_with_valid_traceparent
AdvancedTest: one incoming traceparent, three calls out.  Each call is a
request through the gateway carrying the same traceparent (in `make
w3c-trace`, the service's calls go out through the gateway): the trace-id
is kept, every call gets its own parent-id.
--- request eval
[("POST /t") x 3]
--- more_headers
traceparent: 00-12345678901234567890123456789012-1234567890123456-01
--- response_body_filters eval
sub {
    my ($t, $p) = $_[0] =~ /^traceparent: 00-([0-9a-f]{32})-([0-9a-f]{16})-01$/m
        or return "no traceparent";
    return "other trace-id" if $t ne "12345678901234567890123456789012";
    return "incoming parent-id" if $p eq "1234567890123456";
    return "parent-id seen before" if $main::w3c_valid{$p}++;
    return "same trace, new parent-id";
}
--- response_body eval
[("same trace, new parent-id") x 3]



=== TEST 48: test_multiple_requests_without_traceparent
AdvancedTest: no incoming traceparent, a different parent-id each time.
--- request eval
[("POST /t") x 3]
--- response_body_filters eval
sub {
    my ($t, $p) = $_[0] =~ /^traceparent: 00-([0-9a-f]{32})-([0-9a-f]{16})-03$/m
        or return "no traceparent";
    return "parent-id seen before" if $main::w3c_none{$p}++;
    return "new parent-id";
}
--- response_body eval
[("new parent-id") x 3]



=== TEST 49: test_multiple_requests_with_illegal_traceparent
AdvancedTest: an all-zero trace-id: new trace-ids, never zero, a different
parent-id each time.
--- request eval
[("POST /t") x 3]
--- more_headers
traceparent: 00-00000000000000000000000000000000-1234567890123456-01
--- response_body_filters eval
sub {
    my ($t, $p) = $_[0] =~ /^traceparent: 00-([0-9a-f]{32})-([0-9a-f]{16})-03$/m
        or return "no traceparent";
    return "zero trace-id" if $t eq "0" x 32;
    return "parent-id seen before" if $main::w3c_zero{$p}++;
    return "new trace, new parent-id";
}
--- response_body eval
[("new trace, new parent-id") x 3]



=== TEST 50: test_propagates_random_flag
TraceContext2Test (Level 2): the random flag is kept, with a new parent-id.
--- more_headers
traceparent: 00-12345678901234567890123456789012-1234567890123456-02
--- response_body
traceparent: 00-12345678901234567890123456789012-S1-02
