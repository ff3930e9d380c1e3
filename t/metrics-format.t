# Copyright (C) nginx-gw authors
# gw_metrics exposition: text 0.0.4 and OpenMetrics 1.0, content
# negotiation, one HELP/TYPE per family, label escaping of hostile bytes,
# all checked by a strict parser (t/lib/GwMetrics.pm) and by promtool.

use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwMetrics;

repeat_each(2);
no_shuffle();
no_long_string();

GwTest::use_defaults(
    modules => ['metrics']
);

# A response_body filter: "valid" or the errors of every check, then the
# sample lines matching $re, sorted.
sub checked {
    my ($format, $re) = @_;

    return sub {
        my ($body) = @_;
        my ($err) = GwMetrics::check_exposition($body, $format);
        my $out = @$err ? join('', map { "error: $_\n" } @$err) : "valid\n";
        return $out unless defined $re;
        return $out . join '', sort grep { /$re/ } split /^/m, $body;
    };
}

# "valid" (or errors), then the families in order with their type
sub families {
    my ($format) = @_;

    return sub {
        my ($body) = @_;
        my ($err, $p) = GwMetrics::check_exposition($body, $format);
        my $out = @$err ? join('', map { "error: $_\n" } @$err) : "valid\n";
        return $out . join '', map { "$_ $p->{meta}{$_}{type}\n" }
                               @{ $p->{families} };
    };
}

# the path labels of gateway_requests_total, unescaped, with bytes outside
# printable ASCII shown as \xNN, and their length in bytes
sub paths {
    my ($format) = @_;

    return sub {
        my ($body) = @_;
        my ($err, $p) = GwMetrics::check_exposition($body, $format);
        my $out = @$err ? join('', map { "error: $_\n" } @$err) : "valid\n";
        my @paths;

        for my $s (@{ $p->{series} }) {
            next unless $s->[0] eq 'gateway_requests_total';
            my $v = $s->[1]{path};
            my $len = length $v;
            $v =~ s/([^\x20-\x7e])/sprintf "\\x%02x", ord $1/ge;
            push @paths, "$v $len\n";
        }

        return $out . join '', sort @paths;
    };
}

our $prometheus_accept = 'application/openmetrics-text;version=1.0.0,'
    . 'application/openmetrics-text;version=0.0.1;q=0.75,'
    . 'text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

run_tests();

# The checker itself: every rule it applies must be able to fail.

my $good_text = <<'EOT';
# HELP a_total help
# TYPE a_total counter
a_total{path="x\\y\"z\n"} 1
# HELP h histogram help
# TYPE h histogram
h_bucket{le="0.5"} 1
h_bucket{le="1"} 2
h_bucket{le="+Inf"} 3
h_sum 2.5
h_count 3
EOT

my $good_om = <<'EOT';
# TYPE a counter
# HELP a help
a_total{path="x"} 1
# TYPE h_seconds histogram
# UNIT h_seconds seconds
# HELP h_seconds histogram help
h_seconds_bucket{le="0.5"} 1
h_seconds_bucket{le="1.0"} 2
h_seconds_bucket{le="+Inf"} 3
h_seconds_sum 2.5
h_seconds_count 3
# EOF
EOT

my ($err) = GwMetrics::check_exposition($good_text, 'text');
Test::More::is("@$err", '', 'checker: a good text exposition passes');
($err) = GwMetrics::check_exposition($good_om, 'om');
Test::More::is("@$err", '', 'checker: a good OpenMetrics exposition passes');

for my $bad (
    ['text', 'split family', $good_text . "a_total{path=\"w\"} 1\n"],
    ['text', 'second HELP', $good_text =~ s/^(# TYPE h .*\n)/$1# HELP h again\n/mr],
    ['text', 'buckets not cumulative', $good_text =~ s/le="1"} 2/le="1"} 0/r],
    ['text', '+Inf != count', $good_text =~ s/h_count 3/h_count 4/r],
    ['text', 'le out of order', $good_text =~ s/le="1"/le="0.25"/r],
    ['text', 'no +Inf', $good_text =~ s/h_bucket\{le="\+Inf"\} 3\n//r],
    ['text', 'undefined escape', $good_text =~ s/x\\\\y/x\\qy/r],
    ['text', 'invalid UTF-8', $good_text =~ s/path="x/path="\xff/r],
    ['text', 'raw newline', $good_text =~ s/\\n"/\n"/r],
    ['text', 'sample outside its family', "a_total 1\n" . $good_text],
    ['text', 'carriage return', $good_text =~ s/\n/\r\n/r],
    ['text', 'non-canonical le', $good_text =~ s/le="1"/le="1.0"/r],
    ['text', 'EOF in text', $good_text . "# EOF\n"],
    ['om', 'no EOF', $good_om =~ s/# EOF\n//r],
    ['om', 'data after EOF', $good_om . "a_total 1\n"],
    ['om', 'counter without _total', $good_om =~ s/^a_total/a/mr],
    ['om', 'integer le without .0', $good_om =~ s/le="1.0"/le="1"/r],
    ['om', 'UNIT not a suffix', $good_om =~ s/UNIT h_seconds seconds/UNIT h_seconds bytes/r],
    ['om', 'TYPE after HELP', $good_om =~ s/(# TYPE a counter\n)(# HELP a help\n)/$2$1/r],
    ['om', 'interleaved label sets',
     $good_om =~ s/(a_total\{path="x"\} 1\n)/$1a_total{path="y"} 1\n$1/r],
)
{
    my ($format, $what, $body) = @$bad;
    my ($e) = GwMetrics::check_exposition($body, $format);
    Test::More::ok(scalar @$e, "checker: $what ($format) is caught")
        or Test::More::diag($body);
}

__DATA__

=== TEST 1: text 0.0.4 by default: content type, every family once, promtool
--- http_config
    gw_metrics_zone gwm 1m;
--- config
    gw_metrics on;
    location /api/ { return 200 "api\n"; }
    location = /up { proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/api/; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/api/$_") for 1 .. 3;
GwMetrics::http_get("/up");
--- request
GET /metrics
--- response_headers
Content-Type: text/plain; version=0.0.4; charset=utf-8
--- response_body_filters eval
main::families('text')
--- response_body
valid
gateway_requests_total counter
gateway_request_duration_seconds histogram
gateway_upstream_response_duration_seconds histogram
gateway_connections_active gauge
gateway_connections_reading gauge
gateway_connections_writing gauge
gateway_connections_waiting gauge
gateway_connections_accepted_total counter
gateway_connections_handled_total counter
gateway_metrics_series gauge
gateway_metrics_series_max gauge
gateway_metrics_series_dropped_total counter
gateway_metrics_start_time_seconds gauge
gateway_build_info gauge



=== TEST 2: text 0.0.4 samples: counters, cumulative buckets, build info
--- http_config
    gw_metrics_zone gwm 1m;
--- config
    gw_metrics on;
    location /api/ { return 200 "api\n"; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/api/$_") for 1 .. 3;
--- request
GET /metrics
--- response_body_filters eval
main::checked('text', qr/^gateway_(requests_total|request_duration\S*\{method="GET",path="\/api\/",le="(0.005|1|10|\+Inf)|build|metrics_series)/)
--- response_body eval
my ($v) = `$ENV{TEST_NGINX_BINARY} -v 2>&1` =~ m{nginx/(\S+)};
qq{valid
gateway_build_info{version="0.1.0",nginx_version="$v"} 1
gateway_metrics_series 2
gateway_metrics_series_dropped_total 0
gateway_metrics_series_max 4096
gateway_request_duration_seconds_bucket{method="GET",path="/api/",le="+Inf"} 3
gateway_request_duration_seconds_bucket{method="GET",path="/api/",le="0.005"} 3
gateway_request_duration_seconds_bucket{method="GET",path="/api/",le="1"} 3
gateway_request_duration_seconds_bucket{method="GET",path="/api/",le="10"} 3
gateway_requests_total{method="GET",path="/api/",status="200"} 3
}



=== TEST 3: OpenMetrics for Prometheus' Accept header: families, # EOF, strict and promtool
--- http_config
    gw_metrics_zone gwm3 1m;
--- config
    gw_metrics on;
    location /api/ { return 200 "api\n"; }
    location = /up { proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/api/; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/api/$_") for 1 .. 3;
GwMetrics::http_get("/up");
--- request
GET /metrics
--- more_headers eval
"Accept: $main::prometheus_accept"
--- response_headers
Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8
--- response_body_filters eval
main::families('om')
--- response_body
valid
gateway_requests counter
gateway_request_duration_seconds histogram
gateway_upstream_response_duration_seconds histogram
gateway_connections_active gauge
gateway_connections_reading gauge
gateway_connections_writing gauge
gateway_connections_waiting gauge
gateway_connections_accepted counter
gateway_connections_handled counter
gateway_metrics_series gauge
gateway_metrics_series_max gauge
gateway_metrics_series_dropped counter
gateway_metrics_start_time_seconds gauge
gateway_build info



=== TEST 4: OpenMetrics samples: _total, canonical le with .0, UNIT lines, EOF last
--- http_config
    gw_metrics_zone gwm4 1m;
--- config
    gw_metrics on;
    location /api/ { return 200 "api\n"; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/api/$_") for 1 .. 2;
--- request
GET /metrics
--- more_headers
Accept: application/openmetrics-text
--- response_body_filters eval
main::checked('om', qr/^(gateway_requests_total|gateway_request_duration_seconds_bucket\{method="GET",path="\/api\/",le="(0.005|1.0|10.0|\+Inf)"|# UNIT|# EOF|# TYPE gateway_(requests|build) )/)
--- response_body
valid
# EOF
# TYPE gateway_build info
# TYPE gateway_requests counter
# UNIT gateway_metrics_start_time_seconds seconds
# UNIT gateway_request_duration_seconds seconds
# UNIT gateway_upstream_response_duration_seconds seconds
gateway_request_duration_seconds_bucket{method="GET",path="/api/",le="+Inf"} 2
gateway_request_duration_seconds_bucket{method="GET",path="/api/",le="0.005"} 2
gateway_request_duration_seconds_bucket{method="GET",path="/api/",le="1.0"} 2
gateway_request_duration_seconds_bucket{method="GET",path="/api/",le="10.0"} 2
gateway_requests_total{method="GET",path="/api/",status="200"} 2



=== TEST 5: Accept negotiation: q values, versions, wildcards, several header lines
--- http_config
    gw_metrics_zone gwm 1m;
--- config
    location = /metrics { gw_metrics_endpoint; }
--- request eval
[("GET /metrics") x 12]
--- more_headers eval
[
"Accept: application/openmetrics-text;q=0.1, text/plain",
"Accept: text/plain;version=0.0.4;q=0.5, application/openmetrics-text; version=1.0.0",
"Accept: application/openmetrics-text;version=2.0.0",
"Accept: application/openmetrics-text;version=\"1.0.0\";q=1.0",
"Accept: */*",
"Accept: text/html;q=0.5, application/OpenMetrics-Text ;Q=0.9",
"Accept: application/openmetrics-text;q=0",
"Accept: ;;,,=;q=, application/openmetrics-text;q=1.5",
"Accept: text/plain\nAccept: application/openmetrics-text",
"Accept: text/plain;version=0.0.5, application/openmetrics-text;q=0.2",
"Accept: application/openmetrics-text;version=0.0.1",
"X-Nothing: 1",
]
--- response_headers_like eval
[
"Content-Type: text/plain; version=0.0.4; charset=utf-8",
"Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8",
"Content-Type: text/plain; version=0.0.4; charset=utf-8",
"Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8",
"Content-Type: text/plain; version=0.0.4; charset=utf-8",
"Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8",
"Content-Type: text/plain; version=0.0.4; charset=utf-8",
"Content-Type: text/plain; version=0.0.4; charset=utf-8",
"Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8",
"Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8",
"Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8",
"Content-Type: text/plain; version=0.0.4; charset=utf-8",
]
--- response_body_like eval
[
qr/^# HELP /, qr/\n# EOF\n\z/, qr/^# HELP /, qr/\n# EOF\n\z/, qr/^# HELP /,
qr/\n# EOF\n\z/, qr/^# HELP /, qr/^# HELP /, qr/\n# EOF\n\z/, qr/\n# EOF\n\z/,
qr/\n# EOF\n\z/, qr/^# HELP /,
]



=== TEST 6: HEAD sends the headers only, other methods get 405
--- http_config
    gw_metrics_zone gwm6 1m;
--- config
    location = /metrics { gw_metrics_endpoint; }
--- request eval
["HEAD /metrics", "POST /metrics\nx", "DELETE /metrics"]
--- error_code eval
[200, 405, 405]
--- response_headers_like eval
["Content-Length: [1-9][0-9]*", "Content-Type: text/html", "Content-Type: text/html"]
--- response_body_like eval
["^\$", "405 Not Allowed", "405 Not Allowed"]



=== TEST 7: hostile label bytes: quotes, backslashes, newlines, invalid UTF-8, cut on a character boundary
--- http_config
    gw_metrics_zone gwm 1m;
--- config
    gw_metrics on;
    location /q { gw_metrics_route "say \"hi\" \\o/"; return 200; }
    location /nl { gw_metrics_route "two\nlines"; return 200; }
    location /h { gw_metrics_route $http_x_route; return 200; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/q");
GwMetrics::http_get("/nl");
for my $r ("\xff\xfeab\"c\\",            # stray bytes
           "\xc0\xaf-\xed\xa0\x80",      # overlong, surrogate
           "ok\xf0\x9f\x98\x80",         # 4 bytes, valid
           "\xe2\x82",                   # cut sequence
           "a" . ("\xc3\xa9" x 100),     # 201 bytes, cut at 127
           "z" x 300)                    # 300 bytes, cut at 128
{
    GwMetrics::http_get("/h", headers => ["X-Route: $r"]);
}
--- request
GET /metrics
--- response_body_filters eval
main::paths('text')
--- response_body eval
"valid\n"
. "\\xef\\xbf\\xbd\\xef\\xbf\\xbd 6\n"
. "\\xef\\xbf\\xbd\\xef\\xbf\\xbd-\\xef\\xbf\\xbd\\xef\\xbf\\xbd\\xef\\xbf\\xbd 16\n"
. "\\xef\\xbf\\xbd\\xef\\xbf\\xbdab\"c\\ 11\n"
. "a" . ("\\xc3\\xa9" x 63) . " 127\n"
. "ok\\xf0\\x9f\\x98\\x80 6\n"
. "say \"hi\" \\o/ 12\n"
. "two\\x0alines 9\n"
. ("z" x 128) . " 128\n"



=== TEST 8: the same hostile labels in OpenMetrics
--- http_config
    gw_metrics_zone gwm8 1m;
--- config
    gw_metrics on;
    location /q { gw_metrics_route "say \"hi\" \\o/"; return 200; }
    location /nl { gw_metrics_route "two\nlines"; return 200; }
    location /h { gw_metrics_route $http_x_route; return 200; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/q");
GwMetrics::http_get("/nl");
GwMetrics::http_get("/h", headers => ["X-Route: $_"])
    for "\xff\xfeab\"c\\", "a" . ("\xc3\xa9" x 100);
--- request
GET /metrics
--- more_headers
Accept: application/openmetrics-text
--- response_body_filters eval
main::checked('om', qr/^gateway_requests_total/)
--- response_body eval
"valid\n"
. "gateway_requests_total{method=\"GET\",path=\"a" . ("\xc3\xa9" x 63) . "\",status=\"200\"} 1\n"
. "gateway_requests_total{method=\"GET\",path=\"say \\\"hi\\\" \\\\o/\",status=\"200\"} 1\n"
. "gateway_requests_total{method=\"GET\",path=\"two\\nlines\",status=\"200\"} 1\n"
. "gateway_requests_total{method=\"GET\",path=\"\xef\xbf\xbd\xef\xbf\xbdab\\\"c\\\\\",status=\"200\"} 1\n"



=== TEST 9: no counting without "gw_metrics on", families still declared
--- http_config
    gw_metrics_zone gwm 1m;
--- config
    location /api/ { return 200 "api\n"; }
    location = /metrics { gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/api/$_") for 1 .. 3;
--- request
GET /metrics
--- response_body_filters eval
main::checked('text', qr/^(gateway_req|gateway_up|gateway_metrics_series |# TYPE gateway_(req|up))/)
--- response_body
valid
# TYPE gateway_request_duration_seconds histogram
# TYPE gateway_requests_total counter
# TYPE gateway_upstream_response_duration_seconds histogram
gateway_metrics_series 0



=== TEST 10: no gw_auth / gw_ratelimit loaded: their families are absent, $gw_* not created
--- http_config
    gw_metrics_zone gwm10 1m;
--- config
    gw_metrics on;
    location /api/ { return 200 "api\n"; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/api/1");
--- request
GET /metrics
--- response_body_unlike
(auth|ratelimit)
--- response_body_like
gateway_requests_total\{method="GET",path="/api/",status="200"\} 1



=== TEST 11: the endpoint serves the zone for every server and port
--- http_config
    gw_metrics_zone gwm 1m;
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location = /metrics { gw_metrics_endpoint; }
    }
--- config
    gw_metrics on;
    location /api/ { return 200 "api\n"; }
    location = /metrics {
        gw_metrics off;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- init
GwMetrics::http_get("/api/1");
--- request
GET /metrics
--- response_body_like
gateway_requests_total\{method="GET",path="/api/",status="200"\} 1
