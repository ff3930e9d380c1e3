# Copyright (C) nginx-gw authors
# gw_metrics at scale: 10,000 and then 20,000 series in the zone, every one
# in the scrape, the output valid.  The scrape times are measured and
# reported (diag), not asserted: timing targets belong to benchmarks.

use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwMetrics;
use IO::Socket::INET;
use Time::HiRes ();

no_shuffle();
no_long_string();

GwTest::use_defaults(
    modules => ['metrics']
);

# one request per route, pipelined on one keepalive connection
sub create_routes {
    my ($from, $to) = @_;

    my $s = GwMetrics::connect_nginx(GwMetrics::server_port());

    for (my $i = $from; $i < $to; $i += 200) {
        my $end = $i + 200 > $to ? $to : $i + 200;

        print $s join '', map { "GET /r?r=route$_ HTTP/1.1\r\nHost: x\r\n\r\n" }
                              $i .. $end - 1;

        my ($want, $buf) = ($end - $i, '');

        while ($want > 0) {
            my $n = sysread($s, $buf, 65536, length $buf);
            die "connection closed with $want responses missing" unless $n;
            $want -= () = $buf =~ m{HTTP/1\.1 204 }g;
            $buf = substr($buf, -64);
        }
    }

    close $s;
}

sub time_scrapes {
    my ($what) = @_;

    my (@ms, $len, $lines);

    for (1 .. 5) {
        my $t0 = Time::HiRes::time();
        my ($status, $h, $body) = GwMetrics::http_get("/metrics");
        push @ms, (Time::HiRes::time() - $t0) * 1000;
        $len = length $body;
        $lines = () = $body =~ /\n/g;
    }

    @ms = sort { $a <=> $b } @ms;

    open my $fh, '<', GwMetrics::servroot() . "/logs/scrape.log" or die $!;
    my @server = map { (split)[0] * 1000 } <$fh>;
    close $fh;
    @server = sort { $a <=> $b } @server[-5 .. -1];

    Test::More::diag(sprintf "%s: %d bytes, %d lines; scrape over loopback "
                     . "min %.1f ms, median %.1f ms; in nginx (request_time) "
                     . "min %d ms, median %d ms", $what, $len, $lines,
                     $ms[0], $ms[2], $server[0], $server[2]);
}

run_tests();

__DATA__

=== TEST 1: 10,000 then 20,000 series: every series in the scrape, valid, timed
--- http_config
    gw_metrics_zone gwm 16m;
    log_format scrape "$request_time $bytes_sent";
--- config
    keepalive_requests 100000;
    location /r { gw_metrics on; gw_metrics_route $arg_r; return 204; }
    location = /metrics {
        access_log logs/scrape.log scrape;
        gw_metrics_endpoint;
    }
--- init
main::create_routes(0, 5000);
main::time_scrapes("10,000 series (5,000 counters, 5,000 histograms)");
main::create_routes(5000, 10000);
main::time_scrapes("20,000 series (10,000 counters, 10,000 histograms)");
--- request
GET /metrics
--- response_body_filters eval
sub {
    my ($err, $p) = GwMetrics::check_exposition($_[0], 'text');
    my (%routes, $counters, $histograms);

    for my $s (@{ $p->{series} }) {
        if ($s->[0] eq 'gateway_requests_total') {
            $counters++;
            $routes{$s->[1]{path}}++ if $s->[2] == 1;
        }
        $histograms++ if $s->[0] eq 'gateway_request_duration_seconds_count'
                         && $s->[2] == 1;
    }

    return (@$err ? CORE::join('', map { "error: $_\n" } @$err) : "valid\n")
        . "series " . GwMetrics::sample($p, 'gateway_metrics_series') . "\n"
        . "dropped "
        . GwMetrics::sample($p, 'gateway_metrics_series_dropped_total') . "\n"
        . "counters $counters\nhistograms $histograms\n"
        . "distinct routes counted once " . scalar(keys %routes) . "\n";
}
--- response_body
valid
series 20000
dropped 0
counters 10000
histograms 10000
distinct routes counted once 10000
--- timeout: 60
