# Copyright (C) nginx-gw authors
# gw_metrics when a worker dies while it creates a series (issue 13): gdb
# stops the worker inside each step that makes a new series visible and
# SIGKILLs it there.  The series must neither vanish from the scrape nor
# be created twice: the respawned worker's requests are all shown, in one
# series, and the zone's lock is usable again.  gdb comes from .ci/deps
# (the "test" group); the three blocks take about 4 seconds.

use Test::Nginx::Socket;
use GwTest;
use GwMetrics;
use Time::HiRes ();

# gdb cannot stop code that valgrind runs on its synthetic CPU
if ($ENV{TEST_NGINX_USE_VALGRIND}) {
    plan skip_all => "gdb breakpoints do not work under valgrind";
} else {
    plan 'no_plan';
}

master_on();
workers(1);
no_shuffle();
no_long_string();

GwTest::use_defaults(
    modules => ['metrics'],
    http_config => "gw_metrics_zone gwm 1m;",
    config => <<'EOF',
    gw_metrics on;
    location /victim { return 200 "victim\n"; }
    location /other { return 404; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
EOF
    request => "GET /metrics",
);

# kills the worker in $function while it creates /victim's first series,
# then sends 11 requests to /victim and one to /other from the new worker
sub crash_in {
    my ($function) = @_;

    my $gdb = GwMetrics::kill_in($function,
                                 sub { GwMetrics::http_get("/victim") });

    Test::More::like($gdb, qr/ngx_http_gw_metrics_get/,
                     "stopped in $function, called from the log phase");

    GwMetrics::http_get("/victim") for 1 .. 11;
    GwMetrics::http_get("/other");
}

sub checked {
    return sub {
        my ($body) = @_;
        my ($err, $p) = GwMetrics::check_exposition($body, 'text');
        my $out = @$err ? join('', map { "error: $_\n" } @$err) : "valid\n";
        return $out . join '', sort grep {
            /^gateway_(requests_total|request_duration_seconds_count
                       |metrics_series\ )/x
        } split /^/m, $body;
    };
}

run_tests();

__DATA__

=== TEST 1: killed after the series is counted, before it is in its family list
--- init
main::crash_in("ngx_http_gw_metrics_link");
--- response_body_filters eval
main::checked()
--- response_body
valid
gateway_metrics_series 4
gateway_request_duration_seconds_count{method="GET",path="/other"} 1
gateway_request_duration_seconds_count{method="GET",path="/victim"} 11
gateway_requests_total{method="GET",path="/other",status="404"} 1
gateway_requests_total{method="GET",path="/victim",status="200"} 11
--- error_log eval
[qr/\[alert\] .* worker process \d+ exited on signal 9/,
 qr/\[alert\] .* shared memory zone "gwm" was locked by \d+/,
 qr/\[notice\] .* gw_metrics: finished a series that a killed process left half created in gw_metrics zone "gwm"/]
--- no_error_log
[error]
[crit]
[emerg]



=== TEST 2: killed after the series is in its family list, before it is in the hash table
--- init
main::crash_in("ngx_http_gw_metrics_publish");
--- response_body_filters eval
main::checked()
--- response_body
valid
gateway_metrics_series 4
gateway_request_duration_seconds_count{method="GET",path="/other"} 1
gateway_request_duration_seconds_count{method="GET",path="/victim"} 11
gateway_requests_total{method="GET",path="/other",status="404"} 1
gateway_requests_total{method="GET",path="/victim",status="200"} 11
--- error_log eval
[qr/\[alert\] .* worker process \d+ exited on signal 9/,
 qr/\[alert\] .* shared memory zone "gwm" was locked by \d+/,
 qr/\[notice\] .* gw_metrics: finished a series that a killed process left half created in gw_metrics zone "gwm"/]
--- no_error_log
[error]
[crit]
[emerg]



=== TEST 3: the scrape alone, right after the kill, already shows the series
--- init
GwMetrics::kill_in("ngx_http_gw_metrics_publish",
                   sub { GwMetrics::http_get("/victim") });
--- response_body_filters eval
main::checked()
--- response_body
valid
gateway_metrics_series 1
gateway_requests_total{method="GET",path="/victim",status="200"} 0
--- error_log eval
[qr/\[alert\] .* worker process \d+ exited on signal 9/]
--- no_error_log
[error]
[crit]
[emerg]
