# Copyright (C) nginx-gw authors
# gw_metrics across "nginx -s reload": the zone and its series survive when
# the size and the buckets are unchanged; other buckets or another size
# start from zero in a fresh zone, say so in the log, and the master does
# not keep the old segment mapped.
#
# The perl code of each block sends traffic, edits the configuration the
# runner wrote, sends SIGHUP to the master (pid file in the servroot) and
# waits until the old workers are gone.

use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwMetrics;

master_on();
workers(1);
no_shuffle();
no_long_string();

GwTest::use_defaults(
    modules => ['metrics']
);

our $start;

sub start_time {
    my ($status, $h, $body) = GwMetrics::http_get("/metrics");
    my ($t) = $body =~ /^gateway_metrics_start_time_seconds (\d+)$/m;
    return $t;
}

sub edit_conf {
    my ($from, $to) = @_;

    my $file = GwMetrics::servroot() . "/conf/nginx.conf";
    open my $in, '<', $file or die "$file: $!";
    my $conf = do { local $/; <$in> };
    close $in;

    $conf =~ s/\Q$from\E/$to/ or die "\"$from\" not in $file";

    open my $out, '>', $file or die "$file: $!";
    print $out $conf;
    close $out;
}

# shared mappings of exactly this size in the master (Linux)
sub master_mappings {
    my ($size) = @_;
    my $n = 0;

    no warnings 'portable';

    open my $fh, '<', "/proc/" . GwMetrics::master_pid() . "/maps" or die $!;
    while (<$fh>) {
        my ($lo, $hi, $perm) = /^([0-9a-f]+)-([0-9a-f]+) (\S+)/ or next;
        $n++ if $perm =~ /s/ && hex($hi) - hex($lo) == $size;
    }
    close $fh;

    return $n;
}

# the requests to /a and whether the start time is the one before reload
sub after_reload {
    return sub {
        my ($body) = @_;
        my ($err, $p) = GwMetrics::check_exposition($body, 'text');
        my $out = @$err ? join('', map { "error: $_\n" } @$err) : "valid\n";
        my $n = GwMetrics::sample($p, 'gateway_requests_total',
                                  method => 'GET', path => '/a',
                                  status => '200') // 0;
        my $t = GwMetrics::sample($p, 'gateway_metrics_start_time_seconds');
        my @le = map { $_->[1]{le} } grep {
            $_->[0] eq 'gateway_request_duration_seconds_bucket'
        } @{ $p->{series} };

        return $out . "requests to /a: $n\n"
               . "start time " . ($t == $main::start ? "kept" : "new") . "\n"
               . "buckets @le\n";
    };
}

run_tests();

__DATA__

=== TEST 1: a reload with the same zone keeps every series
--- http_config
    gw_metrics_zone gwm 1m;
    gw_metrics_buckets 0.1 1;
--- config
    gw_metrics on;
    location /a { return 200; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/a") for 1 .. 3;
$main::start = main::start_time();
sleep 1;
GwMetrics::wait_reload();
GwMetrics::http_get("/a") for 1 .. 2;
--- request
GET /metrics
--- response_body_filters eval
main::after_reload()
--- response_body
valid
requests to /a: 5
start time kept
buckets 0.1 1 +Inf
--- no_error_log
start from zero
[error]
[alert]
[emerg]



=== TEST 2: a new max_series is applied on reload, the series stay
--- http_config
    gw_metrics_zone gwm 1m max_series=100;
    gw_metrics_buckets 0.1 1;
--- config
    gw_metrics on;
    location /a { return 200; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/a") for 1 .. 3;
$main::start = main::start_time();
main::edit_conf("max_series=100", "max_series=3");
sleep 1;
GwMetrics::wait_reload();
GwMetrics::http_get("/a");
--- request
GET /metrics
--- response_body_filters eval
sub {
    main::after_reload()->($_[0])
    . ($_[0] =~ /^(gateway_metrics_series_max \d+)$/m)[0] . "\n";
}
--- response_body
valid
requests to /a: 4
start time kept
buckets 0.1 1 +Inf
gateway_metrics_series_max 3
--- no_error_log
start from zero
[error]
[alert]
[emerg]



=== TEST 3: other buckets: a fresh zone, the reason logged, the old segment unmapped
--- http_config
    gw_metrics_zone gwm3 1m;
    gw_metrics_buckets 0.1 1;
--- config
    gw_metrics on;
    location /a { return 200; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/a") for 1 .. 3;
$main::start = main::start_time();
Test::More::is(main::master_mappings(1048576), 1, "one 1m zone mapped");
main::edit_conf("gw_metrics_buckets 0.1 1;", "gw_metrics_buckets 0.2 1;");
sleep 1;
GwMetrics::wait_reload();
Test::More::is(main::master_mappings(1048576), 1,
               "still one 1m zone mapped in the master");
main::edit_conf("gw_metrics_buckets 0.2 1;", "gw_metrics_buckets 0.1 1;");
GwMetrics::wait_reload();
Test::More::is(main::master_mappings(1048576), 1,
               "one 1m zone mapped after changing back");
GwMetrics::http_get("/a");
--- request
GET /metrics
--- response_body_filters eval
main::after_reload()
--- response_body
valid
requests to /a: 1
start time new
buckets 0.1 1 +Inf
--- grep_error_log eval
qr/gw_metrics: zone "gwm3" has other histogram buckets than "gw_metrics_buckets", its series start from zero/
--- grep_error_log_out
gw_metrics: zone "gwm3" has other histogram buckets than "gw_metrics_buckets", its series start from zero
gw_metrics: zone "gwm3" has other histogram buckets than "gw_metrics_buckets", its series start from zero
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 4: another size: a fresh zone and the reason logged
--- http_config
    gw_metrics_zone gwm 1m;
--- config
    gw_metrics on;
    location /a { return 200; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/a") for 1 .. 3;
$main::start = main::start_time();
main::edit_conf("gw_metrics_zone gwm 1m;", "gw_metrics_zone gwm 2m;");
sleep 1;
GwMetrics::wait_reload();
GwMetrics::http_get("/a");
--- request
GET /metrics
--- response_body_filters eval
main::after_reload()
--- response_body
valid
requests to /a: 1
start time new
buckets 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf
--- error_log
gw_metrics: zone "gwm" changed size from 1048576 to 2097152, its series start from zero
--- no_error_log
[error]
[alert]
[emerg]
