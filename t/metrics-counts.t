# Copyright (C) nginx-gw authors
# gw_metrics counting: exact counts with several workers sharing the zone,
# histogram arithmetic checked against nginx's own $request_time and
# $upstream_response_time, method and status labels for odd requests.

use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwMetrics;
use Time::HiRes ();

master_on();
workers(2);
worker_connections(1024);
no_shuffle();
no_long_string();

GwTest::use_defaults(
    modules => ['metrics']
);

sub checked {
    my ($format, $re) = @_;

    return sub {
        my ($body) = @_;
        my ($err) = GwMetrics::check_exposition($body, $format);
        my $out = @$err ? join('', map { "error: $_\n" } @$err) : "valid\n";
        return $out . join '', sort grep { /$re/ } split /^/m, $body;
    };
}

# Compares the histograms of $path with an access log written with
# "$uri $request_time $upstream_response_time": same clock, same moment
# (the log phase), so counts, buckets and sums must match to the
# millisecond.  Also tells whether at least $want_slow requests were slower
# than $slow seconds, so the test knows the delays really happened.
sub against_log {
    my ($log, $path, $slow, $want_slow) = @_;

    return sub {
        my ($body) = @_;
        my ($err, $p) = GwMetrics::check_exposition($body, 'text');
        my $out = @$err ? join('', map { "error: $_\n" } @$err) : "valid\n";

        open my $fh, '<', GwMetrics::servroot() . "/logs/$log" or die $!;
        my (@req, @up);
        while (<$fh>) {
            my ($uri, $rt, $ut) = split ' ', $_, 3;
            next unless $uri eq $path;
            push @req, int($rt * 1000 + 0.5);
            my @tries = grep { /^\d/ } split /[ ,:]+/, $ut;
            push @up, [map { int($_ * 1000 + 0.5) } @tries] if @tries;
        }
        close $fh;

        for my $h (['gateway_request_duration_seconds', [@req],
                    method => 'GET'],
                   ['gateway_upstream_response_duration_seconds',
                    [map { my $s = 0; $s += $_ for @$_; $s } @up]])
        {
            my ($name, $obs, @lab) = @$h;
            my @le = map { $_->[1]{le} } grep {
                $_->[0] eq "${name}_bucket" && $_->[1]{path} eq $path
            } @{ $p->{series} };

            my $count = GwMetrics::sample($p, "${name}_count", path => $path,
                                          @lab) // 'none';
            my $sum = GwMetrics::sample($p, "${name}_sum", path => $path,
                                        @lab) // 0;
            my $lsum = 0;
            $lsum += $_ for @$obs;

            $out .= "$name count $count log " . @$obs . "\n";
            $out .= "$name sum "
                    . ($lsum == int($sum * 1000 + 0.5) ? "matches" : "$sum")
                    . " log\n";

            my $bad = 0;
            for my $le (@le) {
                my $v = GwMetrics::sample($p, "${name}_bucket", path => $path,
                                          le => $le, @lab);
                my $n = grep { $le eq '+Inf' || $_ <= $le * 1000 } @$obs;
                $bad++ if $v != $n;
            }
            $out .= "$name buckets " . ($bad ? "$bad differ" : "match")
                    . " log\n";
        }

        my $n = grep { $_ > $slow * 1000 } @req;
        $out .= "slower than $slow s: "
                . ($n >= $want_slow ? "at least $want_slow" : $n) . "\n";
        return $out;
    };
}

run_tests();

__DATA__

=== TEST 1: exact counts from 300 requests spread over two workers
--- http_config
    gw_metrics_zone gwm 1m;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1 reuseport;
        gw_metrics on;
        location /count { return 200 "$pid"; }
    }
--- config
    location /count { proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    location = /metrics { gw_metrics_endpoint; }
--- init
my @r = GwMetrics::parallel_get("/count", 300, width => 30);
my %pids;
$pids{$_}++ for map { /^200 (\d+)$/ ? $1 : "bad: $_" } @r;
Test::More::is(scalar(grep { /^bad/ } keys %pids), 0, "300 answers 200");
Test::More::cmp_ok(scalar(keys %pids), '>=', 2,
    "both workers counted: " . join(", ", map { "$_ x $pids{$_}" }
                                           sort keys %pids));
Time::HiRes::sleep(0.2);
--- request
GET /metrics
--- response_body_filters eval
main::checked('text', qr/^gateway_(requests_total|request_duration_seconds_(count|bucket.*Inf)|metrics_series )/)
--- response_body
valid
gateway_metrics_series 2
gateway_request_duration_seconds_bucket{method="GET",path="/count",le="+Inf"} 300
gateway_request_duration_seconds_count{method="GET",path="/count"} 300
gateway_requests_total{method="GET",path="/count",status="200"} 300



=== TEST 2: histogram buckets and sums equal $request_time and $upstream_response_time
--- http_config
    gw_metrics_zone gwm 1m;
    gw_metrics_buckets 0.1 0.25 1 2;
    limit_req_zone $server_port zone=slow:1m rate=4r/s;
    log_format gwm "$uri $request_time $upstream_response_time";
--- config
    access_log logs/gwm.log gwm;
    location /slow {
        gw_metrics on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/delayed;
    }
    location /delayed {
        # "return" would answer in the rewrite phase, before limit_req
        access_log off;
        limit_req zone=slow burst=10;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/fast;
    }
    location /fast { access_log off; return 200 "fast\n"; }
    location = /metrics { gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/slow") for 1 .. 4;
Time::HiRes::sleep(0.2);
--- request
GET /metrics
--- response_body_filters eval
main::against_log('gwm.log', '/slow', 0.1, 3)
--- response_body
valid
gateway_request_duration_seconds count 4 log 4
gateway_request_duration_seconds sum matches log
gateway_request_duration_seconds buckets match log
gateway_upstream_response_duration_seconds count 4 log 4
gateway_upstream_response_duration_seconds sum matches log
gateway_upstream_response_duration_seconds buckets match log
slower than 0.1 s: at least 3



=== TEST 3: upstream time sums every try; no upstream series when not proxied
--- http_config
    gw_metrics_zone gwm 1m;
    log_format gwm "$uri $request_time $upstream_response_time";
    upstream two {
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        server 127.0.0.1:$TEST_NGINX_SERVER_PORT;
    }
--- config
    access_log logs/gwm.log gwm;
    location /retry {
        gw_metrics on;
        proxy_next_upstream error;
        proxy_pass http://two/direct;
    }
    location /direct { gw_metrics on; return 200 "direct\n"; }
    location = /metrics { gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/retry") for 1 .. 3;
Time::HiRes::sleep(0.2);
--- request
GET /metrics
--- response_body_filters eval
sub {
    my $a = main::against_log('gwm.log', '/retry', 10, 0)->($_[0]);
    my $b = $_[0] =~ /^gateway_upstream\S*\{path="\/direct"/m
            ? "upstream series for /direct\n" : "";
    return $a . $b;
}
--- response_body
valid
gateway_request_duration_seconds count 3 log 3
gateway_request_duration_seconds sum matches log
gateway_request_duration_seconds buckets match log
gateway_upstream_response_duration_seconds count 3 log 3
gateway_upstream_response_duration_seconds sum matches log
gateway_upstream_response_duration_seconds buckets match log
slower than 10 s: at least 0
--- error_log
connect() failed (111: Connection refused) while connecting to upstream
--- no_error_log
[alert]
[emerg]



=== TEST 4: methods and statuses: unknown method, WebDAV, 400, 444, 499, HTTP/0.9
--- http_config
    gw_metrics_zone gwm 1m;
    limit_req_zone $server_port zone=stall:1m rate=1r/m;
--- config
    gw_metrics on;
    location /stall {
        limit_req zone=stall burst=5;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/fast;
    }
    location /fast { gw_metrics off; return 200 "fast\n"; }
    location /close { return 444; }
    location /any { return 200 "any\n"; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/stall");
# the next one waits a minute in limit_req: the client leaves first, 499
GwMetrics::http_raw("GET /stall HTTP/1.0\r\n\r\n", close_after => 0.3);
GwMetrics::http_get("/close");
GwMetrics::http_raw("GARBAGE\r\n\r\n");
GwMetrics::http_get("/any", method => "FOO");
GwMetrics::http_get("/any", method => "PROPFIND");
GwMetrics::http_raw("GET /any\r\n");
Time::HiRes::sleep(0.3);
--- request
GET /metrics
--- response_body_filters eval
main::checked('text', qr/^gateway_requests_total/)
--- response_body
valid
gateway_requests_total{method="GET",path="/any",status="200"} 1
gateway_requests_total{method="GET",path="/close",status="444"} 1
gateway_requests_total{method="GET",path="/stall",status="200"} 1
gateway_requests_total{method="GET",path="/stall",status="499"} 1
gateway_requests_total{method="OTHER",path="/any",status="200"} 1
gateway_requests_total{method="OTHER",path="__none__",status="400"} 1
gateway_requests_total{method="PROPFIND",path="/any",status="200"} 1



=== TEST 5: connection gauges and counters from nginx's stub_status counters
--- http_config
    gw_metrics_zone gwm 1m;
--- config
    location /any { return 200 "any\n"; }
    location = /metrics { gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/any") for 1 .. 5;
--- request
GET /metrics
--- response_body_filters eval
sub {
    my ($err, $p) = GwMetrics::check_exposition($_[0], 'text');
    my $v = sub { GwMetrics::sample($p, $_[0]) // -1 };
    return (@$err ? "errors: @$err\n" : "valid\n")
        . "active>=1 " . ($v->('gateway_connections_active') >= 1) . "\n"
        . "writing>=1 " . ($v->('gateway_connections_writing') >= 1) . "\n"
        . "reading>=0 " . ($v->('gateway_connections_reading') >= 0) . "\n"
        . "waiting>=0 " . ($v->('gateway_connections_waiting') >= 0) . "\n"
        . "accepted>=6 "
        . ($v->('gateway_connections_accepted_total') >= 6) . "\n"
        . "handled=accepted "
        . ($v->('gateway_connections_handled_total')
           == $v->('gateway_connections_accepted_total')) . "\n";
}
--- response_body
valid
active>=1 1
writing>=1 1
reading>=0 1
waiting>=0 1
accepted>=6 1
handled=accepted 1



=== TEST 6: keys that share a worker's memo slot, or differ only in the location or a variable route, keep their own counts
--- http_config
    gw_metrics_zone gwm 1m;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location = /code/200 { return 200 "ok\n"; }
        location = /code/401 { return 401; }
        location = /code/405 { return 405; }
        location = /code/501 { return 501; }
    }
--- config
    gw_metrics on;
    location /m/a { proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/code/$arg_s; }
    location /m/b { proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/code/$arg_s; }
    location /m/c {
        gw_metrics_route fixed;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/code/$arg_s;
    }
    location /m/v {
        gw_metrics_route $arg_r;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/code/$arg_s;
    }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
# GET 200, GET 501 and POST 401 share a slot of a location's memo, as do
# POST 200 and GET 405: each takes the slot in turn
for (1 .. 3) {
    GwMetrics::http_get($_->[1], method => $_->[0])
        for [GET => "/m/a?s=200"], [POST => "/m/a?s=401"],
            [GET => "/m/a?s=200"], [GET => "/m/a?s=501"],
            [GET => "/m/a?s=200"], [POST => "/m/a?s=200"],
            [GET => "/m/a?s=405"], [GET => "/m/a?s=200"],
            [POST => "/m/a?s=401"], [GET => "/m/b?s=200"],
            [GET => "/m/b?s=401"], [GET => "/m/c?s=200"],
            [GET => "/m/v?r=x&s=200"], [GET => "/m/v?r=y&s=200"],
            [GET => "/m/v?r=x&s=200"];
}
Time::HiRes::sleep(0.2);
--- request
GET /metrics
--- response_body_filters eval
main::checked('text', qr/^gateway_(requests_total|request_duration_seconds_count|upstream_response_duration_seconds_count)/)
--- response_body
valid
gateway_request_duration_seconds_count{method="GET",path="/m/a"} 18
gateway_request_duration_seconds_count{method="GET",path="/m/b"} 6
gateway_request_duration_seconds_count{method="GET",path="fixed"} 3
gateway_request_duration_seconds_count{method="GET",path="x"} 6
gateway_request_duration_seconds_count{method="GET",path="y"} 3
gateway_request_duration_seconds_count{method="POST",path="/m/a"} 9
gateway_requests_total{method="GET",path="/m/a",status="200"} 12
gateway_requests_total{method="GET",path="/m/a",status="405"} 3
gateway_requests_total{method="GET",path="/m/a",status="501"} 3
gateway_requests_total{method="GET",path="/m/b",status="200"} 3
gateway_requests_total{method="GET",path="/m/b",status="401"} 3
gateway_requests_total{method="GET",path="fixed",status="200"} 3
gateway_requests_total{method="GET",path="x",status="200"} 6
gateway_requests_total{method="GET",path="y",status="200"} 3
gateway_requests_total{method="POST",path="/m/a",status="200"} 3
gateway_requests_total{method="POST",path="/m/a",status="401"} 6
gateway_upstream_response_duration_seconds_count{path="/m/a"} 27
gateway_upstream_response_duration_seconds_count{path="/m/b"} 6
gateway_upstream_response_duration_seconds_count{path="fixed"} 3
gateway_upstream_response_duration_seconds_count{path="x"} 6
gateway_upstream_response_duration_seconds_count{path="y"} 3
