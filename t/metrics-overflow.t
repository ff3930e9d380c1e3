# Copyright (C) nginx-gw authors
# gw_metrics bounded cardinality: max_series and a zone too small for the
# traffic both end in __overflow__ series and
# gateway_metrics_series_dropped_total, never in an error or lost counts.

use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwMetrics;

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

# totals over every series of a family, overflow included: nothing lost
sub totals {
    my ($format) = @_;

    return sub {
        my ($body) = @_;
        my ($err, $p) = GwMetrics::check_exposition($body, $format);
        my $out = @$err ? join('', map { "error: $_\n" } @$err) : "valid\n";
        my (%sum, %n);

        for my $s (@{ $p->{series} }) {
            next unless $s->[0] =~ /^gateway_request(s_total|_duration_seconds_count)$/;
            $sum{$s->[0]} += $s->[2];
            $n{$s->[0]}++;
        }

        my $v = sub { GwMetrics::sample($p, @_) // 'none' };
        my $series = $v->('gateway_metrics_series');
        my $max = $v->('gateway_metrics_series_max');
        my $dropped = $v->('gateway_metrics_series_dropped_total');

        return $out
            . "requests $sum{gateway_requests_total}\n"
            . "durations $sum{gateway_request_duration_seconds_count}\n"
            . "series == max: " . ($series == $max ? "yes" : "$series $max")
            . "\n"
            . "series listed == series: "
            . ($n{gateway_requests_total}
               + $n{gateway_request_duration_seconds_count} - 2 == $series
               ? "yes" : "no") . "\n"
            . "dropped > 0: " . ($dropped > 0 ? "yes" : "no") . "\n"
            . "overflow requests: "
            . ($v->('gateway_requests_total', method => '__overflow__',
                    path => '__overflow__', status => '__overflow__') > 0
               ? "yes" : "no") . "\n";
    };
}

run_tests();

__DATA__

=== TEST 1: max_series=5: the sixth label set and on go to __overflow__, old series keep counting
--- http_config
    gw_metrics_zone gwm 1m max_series=5;
--- config
    gw_metrics on;
    location /r { gw_metrics_route $arg_r; return 200; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/r?r=$_") for qw(a b c d e a);
--- request
GET /metrics
--- response_body_filters eval
main::checked('text', qr/^gateway_(requests_total|request_duration_seconds_count|metrics_series)/)
--- response_body
valid
gateway_metrics_series 5
gateway_metrics_series_dropped_total 5
gateway_metrics_series_max 5
gateway_request_duration_seconds_count{method="GET",path="a"} 2
gateway_request_duration_seconds_count{method="GET",path="b"} 1
gateway_request_duration_seconds_count{method="__overflow__",path="__overflow__"} 3
gateway_requests_total{method="GET",path="a",status="200"} 2
gateway_requests_total{method="GET",path="b",status="200"} 1
gateway_requests_total{method="GET",path="c",status="200"} 1
gateway_requests_total{method="__overflow__",path="__overflow__",status="__overflow__"} 2
--- grep_error_log eval
qr/gw_metrics: reached its limit of \d+ series, new series are counted as __overflow__ in gw_metrics zone "gwm"/
--- grep_error_log_out
gw_metrics: reached its limit of 5 series, new series are counted as __overflow__ in gw_metrics zone "gwm"
--- no_error_log
[error]
[alert]



=== TEST 2: the overflow series in OpenMetrics
--- http_config
    gw_metrics_zone gwm 1m max_series=2;
--- config
    gw_metrics on;
    location /r { gw_metrics_route $arg_r; return 200; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/r?r=$_") for qw(a b c);
--- request
GET /metrics
--- more_headers
Accept: application/openmetrics-text
--- response_body_filters eval
main::checked('om', qr/^gateway.*__overflow__/)
--- response_body
valid
gateway_request_duration_seconds_bucket{method="__overflow__",path="__overflow__",le="+Inf"} 2
gateway_request_duration_seconds_bucket{method="__overflow__",path="__overflow__",le="0.005"} 2
gateway_request_duration_seconds_bucket{method="__overflow__",path="__overflow__",le="0.01"} 2
gateway_request_duration_seconds_bucket{method="__overflow__",path="__overflow__",le="0.025"} 2
gateway_request_duration_seconds_bucket{method="__overflow__",path="__overflow__",le="0.05"} 2
gateway_request_duration_seconds_bucket{method="__overflow__",path="__overflow__",le="0.1"} 2
gateway_request_duration_seconds_bucket{method="__overflow__",path="__overflow__",le="0.25"} 2
gateway_request_duration_seconds_bucket{method="__overflow__",path="__overflow__",le="0.5"} 2
gateway_request_duration_seconds_bucket{method="__overflow__",path="__overflow__",le="1.0"} 2
gateway_request_duration_seconds_bucket{method="__overflow__",path="__overflow__",le="10.0"} 2
gateway_request_duration_seconds_bucket{method="__overflow__",path="__overflow__",le="2.5"} 2
gateway_request_duration_seconds_bucket{method="__overflow__",path="__overflow__",le="5.0"} 2
gateway_request_duration_seconds_count{method="__overflow__",path="__overflow__"} 2
gateway_request_duration_seconds_sum{method="__overflow__",path="__overflow__"} 0
gateway_requests_total{method="__overflow__",path="__overflow__",status="__overflow__"} 2
--- no_error_log
[error]
[alert]



=== TEST 3: a 32k zone runs out of memory before its cap: overflow, nothing lost, valid output
--- http_config
    gw_metrics_zone gwm 32k;
--- config
    gw_metrics on;
    location /r { gw_metrics_route $arg_r; return 200; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
my $long = "x" x 100;
my @r = map { (GwMetrics::http_get("/r?r=$long$_"))[0] } 1 .. 300;
Test::More::is(scalar(grep { $_ == 200 } @r), 300, "300 requests answered");
--- request
GET /metrics
--- response_body_filters eval
main::totals('text')
--- response_body
valid
requests 300
durations 300
series == max: yes
series listed == series: yes
dropped > 0: yes
overflow requests: yes
--- error_log eval
qr/gw_metrics: (ran out of memory at|reached its limit of) \d+ series, new series are counted as __overflow__ in gw_metrics zone "gwm"/
--- no_error_log
[error]
[alert]
