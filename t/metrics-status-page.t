# Copyright (C) nginx-gw authors
# gw_metrics' status page: the endpoint answers a browser (text/html
# preferred) with a self-contained page and everyone else with the text
# formats as before; the page, loaded in a headless Chromium (Debian's
# chromium, from .ci/deps) after a known traffic pattern, shows the routes,
# totals, status mix, rates and latency percentiles of that traffic, the
# auth and rate limit decisions and what can be said about Redis, runs
# under its own Content-Security-Policy without a console error, and
# refreshes itself.  The expected rates and percentiles are computed here,
# from scrapes of the text format, with Prometheus' histogram_quantile()
# written again in Perl.

use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwMetrics;
use GwAuth;
use Digest::SHA ();
use Time::HiRes ();

no_shuffle();
no_long_string();

our $key = gw_key('page', 'p256');
our $client = "page-$$-" . time;
our $evil = q{<img src=x onerror=alert(1)>"'&};

GwTest::use_defaults(
    modules => ['auth', 'ratelimit', 'metrics'],
    user_files => gw_files('jwks.json' => gw_jwks(gw_jwk($key, kid => 'k1',
                                                         alg => 'ES256'))),
);

our $chrome = 'Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36';
our $chrome_accept = 'text/html,application/xhtml+xml,application/xml;'
    . 'q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,'
    . 'application/signed-exchange;v=b3;q=0.7';
our $prometheus_accept = 'application/openmetrics-text;version=1.0.0,'
    . 'application/openmetrics-text;version=0.0.1;q=0.75,'
    . 'text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

sub page_source {
    my $file = "$ENV{TEST_NGINX_BUILD_DIR}/../docs/status-page.html";
    $file = "../docs/status-page.html" unless -e $file;
    open my $fh, '<:raw', $file or die "$file: $!";
    local $/;
    return <$fh>;
}

# --- traffic ---------------------------------------------------------------

sub get {
    my ($path, @h) = @_;
    my ($status) = GwMetrics::http_get($path, headers => \@h);
    return $status;
}

# a request whose head arrives in two parts $delay seconds apart: nginx's
# $request_time, and so the duration histogram, counts from the first byte
sub slow_get {
    my ($path, $delay) = @_;

    my $s = GwMetrics::connect_nginx(GwMetrics::server_port());
    syswrite $s, "GET $path HTTP/1.0\r\n";
    Time::HiRes::sleep($delay);
    syswrite $s, "Host: localhost\r\n\r\n";
    local $/;
    my $resp = <$s>;
    close $s;
    return $resp =~ m{^HTTP/1\.\d (\d+)} ? $1 : 0;
}

sub token {
    my (%claims) = @_;
    return gw_token($key, 'ES256', { sub => 'alice', exp => time + 600,
                                     %claims }, { kid => 'k1' });
}

# Redis answers nothing for 1.5 s: decisions miss their 200 ms deadline
sub redis_pause {
    my $port = $ENV{TEST_NGINX_REDIS_PORT};
    my $out = `redis-cli -p $port CLIENT PAUSE 1500 ALL 2>&1`;
    die "redis-cli CLIENT PAUSE: $out" unless $out =~ /OK/;
}

sub redis_wait {
    my $port = $ENV{TEST_NGINX_REDIS_PORT};
    for (1 .. 100) {
        return if `redis-cli -p $port PING 2>&1` =~ /PONG/;
        Time::HiRes::sleep(0.05);
    }
    die "redis did not come back";
}

# --- expectations, computed from scrapes -----------------------------------

sub scrape {
    my ($status, $h, $body) = GwMetrics::http_get("/metrics");
    my ($err, $p) = GwMetrics::check_exposition($body, 'text');
    die "invalid scrape: @$err" if @$err;
    return $p;
}

# per path: requests, status classes, cumulative buckets; decisions
sub summarize {
    my ($p) = @_;
    my %m;

    for my $s (@{ $p->{series} }) {
        my ($name, $l, $v) = @$s;

        if ($name eq 'gateway_requests_total') {
            my $c = $l->{status} =~ /^[1-5]/ ? substr($l->{status}, 0, 1)
                                             : 'o';
            $m{route}{ $l->{path} }{n} += $v;
            $m{route}{ $l->{path} }{st}{$c} += $v;
        } elsif ($name eq 'gateway_request_duration_seconds_bucket') {
            $m{route}{ $l->{path} }{b}{ $l->{le} } += $v;
        } elsif ($name eq 'gateway_auth_decisions_total') {
            $m{auth}{ $l->{result} } += $v;
        } elsif ($name eq 'gateway_ratelimit_decisions_total') {
            $m{rl}{ $l->{result} } += $v;
        }
    }

    return \%m;
}

# histogram_quantile() as Prometheus documents it (linear interpolation
# in the bucket holding the rank, the highest finite bound when the rank
# falls in +Inf), written apart from the page's JavaScript
sub histogram_quantile {
    my ($q, $buckets) = @_;

    my @b = sort { $a->[0] <=> $b->[0] }
            map { [$_ eq '+Inf' ? 9**9**9 : $_, $buckets->{$_}] }
            keys %$buckets;

    return 'NaN' if @b < 2 || $b[-1][0] != 9**9**9 || $b[-1][1] <= 0;

    for my $i (1 .. $#b) {
        $b[$i][1] = $b[$i - 1][1] if $b[$i][1] < $b[$i - 1][1];
    }

    my $rank = $q * $b[-1][1];
    my $i = 0;
    $i++ while $i < $#b && $b[$i][1] < $rank;

    return $b[-2][0] if $i == $#b;
    return $b[0][0] if $i == 0 && $b[0][0] <= 0;

    my ($start, $count) = (0, $b[$i][1]);

    if ($i > 0) {
        $start = $b[$i - 1][0];
        $count -= $b[$i - 1][1];
        $rank -= $b[$i - 1][1];
    }

    return $start + ($b[$i][0] - $start) * ($rank / $count);
}

# a number as the page writes it: 2 decimals below 10, 1 below 100
sub num {
    my ($x) = @_;
    return '-' if $x eq 'NaN';
    return sprintf($x < 10 ? '%.2f' : $x < 100 ? '%.1f' : '%.0f', $x);
}

# the shown number is $x as the page would round it (ties either way)
sub same {
    my ($shown, $x) = @_;
    return $shown eq '-' if $x eq 'NaN';
    return 0 unless $shown =~ /^\d+(?:\.(\d+))?$/;
    my $ulp = 10 ** -length($1 // '');
    return abs($shown - $x) <= $ulp / 2 + 1e-9 * (1 + abs $x);
}

sub table_js {
    my ($id) = @_;
    return "JSON.stringify(Array.from(document.querySelectorAll("
           . "'#$id tbody tr')).map(function (r) { return Array.from("
           . "r.cells).map(function (c) { return c.textContent; }); }))";
}

sub tables {
    my ($b) = @_;
    my %t;

    for my $id (qw(routes auth ratelimit)) {
        $t{$id} = { map { $_->[0] => $_ }
                    @{ JSON::PP::decode_json($b->eval(table_js($id))) } };
    }

    return \%t;
}

# --- the browser test -------------------------------------------------------

sub browse {
    my $port = GwMetrics::server_port();
    my @out;
    my $ok = sub { push @out, ($_[0] ? "ok" : "NOT ok") . " - $_[1]\n" };

    # before the page: T1
    get("/api/users", "Authorization: Bearer " . token()) for 1 .. 3;
    get("/api/users");
    get("/api/missing") for 1 .. 2;

    # the worker's Redis connection and script, before the window
    get("/api/orders", "X-Client-Id: warm-$client");

    my $b = GwMetrics::Browser->start;
    my $t0 = Time::HiRes::time();

    $b->navigate("http://127.0.0.1:$port/metrics#every=0");
    $b->wait_for("document.body && document.body.dataset.refreshes == '1'")
        or die "the page never showed data";

    my $t1 = Time::HiRes::time();
    my $sa = summarize(scrape());

    # in the window: T2
    get("/api/users", "Authorization: Bearer " . token()) for 1 .. 5;
    get("/api/users", "Authorization: Bearer " . token(exp => time - 3600));
    get("/api/users", "Authorization: Bearer x" . token());
    get("/api/users");
    get("/api/orders", "X-Client-Id: $client") for 1 .. 6;
    redis_pause();
    get("/api/orders", "X-Client-Id: $client") for 1 .. 3;
    get("/api/boom") for 1 .. 2;
    slow_get("/api/slow", 0.12) for 1 .. 3;
    slow_get("/api/slow", 0.3);
    get("/api/slow") for 1 .. 2;
    get("/api/evil");

    my $t2 = Time::HiRes::time();
    $b->eval("document.getElementById('now').click(); 1");
    $b->wait_for("document.body.dataset.refreshes == '2'")
        or die "the page did not refresh";
    my $t3 = Time::HiRes::time();

    my $sb = summarize(scrape());
    my $shown = tables($b);
    my $ms = $b->eval("document.getElementById('window').dataset.ms");

    $ok->($ms >= ($t2 - $t1) * 1000 && $ms <= ($t3 - $t0) * 1000,
          "window of $ms ms between the two refreshes");

    my $dt = $ms / 1000;
    my $win = 0;

    for my $path (sort keys %{ $sb->{route} }) {
        my $r = $sb->{route}{$path};
        my $o = $sa->{route}{$path} || { n => 0, b => {} };
        my $row = $shown->{routes}{$path};
        my $n = $r->{n} - $o->{n};
        my %delta = map { $_ => $r->{b}{$_} - ($o->{b}{$_} // 0) }
                    keys %{ $r->{b} };
        $win += $n;

        if (!$row) {
            $ok->(0, "route $path shown");
            next;
        }

        my (undef, $rate, $total, @rest) = @$row;
        my @st = @rest[0 .. 4];
        my @pct = @rest[6 .. 8];

        $ok->($total == $r->{n}, "$path: $total requests (scrape: $r->{n})");
        $ok->(join(',', @st) eq join(',', map { $r->{st}{$_} // 0 }
                                              qw(2 3 4 5 o)),
              "$path: status mix @st");
        $ok->(same($rate, $n / $dt), "$path: $rate/s ($n in the window)");

        my @want = map { histogram_quantile($_, \%delta) } 0.5, 0.9, 0.99;
        $ok->(same($pct[$_], $want[$_] eq 'NaN' ? 'NaN' : $want[$_] * 1000),
              "$path: p" . (50, 90, 99)[$_] . " $pct[$_] ms (expected "
              . num($want[$_] eq 'NaN' ? 'NaN' : $want[$_] * 1000) . ")")
            for 0 .. 2;
    }

    $ok->(keys %{ $shown->{routes} } == keys %{ $sb->{route} },
          "every route and no other: "
          . join(' ', sort keys %{ $shown->{routes} }));

    for my $t (['auth', 'auth'], ['ratelimit', 'rl']) {
        my ($id, $k) = @$t;
        for my $res (sort keys %{ $sb->{$k} }) {
            my $row = $shown->{$id}{$res} || [];
            my $n = $sb->{$k}{$res} - ($sa->{$k}{$res} // 0);
            $ok->(($row->[2] // '') eq $sb->{$k}{$res}
                  && same($row->[1] // '', $n / $dt),
                  "$id $res: @$row[1 .. 2] (scrape: $sb->{$k}{$res}, "
                  . "$n in the window)");
        }
        $ok->(keys %{ $shown->{$id} } == keys %{ $sb->{$k} },
              "$id: every result shown");
    }

    # what the pattern makes, whatever the page says
    # (a slow machine, valgrind, may turn a decision into ERROR)
    my %rl = map { $_ => ($sb->{rl}{$_} // 0) - ($sa->{rl}{$_} // 0) }
             qw(PASSED REJECTED ERROR);
    my $want = join ' ', map { "$_=$rl{$_}" } qw(PASSED REJECTED ERROR);
    $ok->($rl{PASSED} + $rl{REJECTED} + $rl{ERROR} == 9 && $rl{ERROR} >= 3
          && $rl{PASSED} >= 1 && $rl{REJECTED} >= 1,
          "rate limit in the window: $want");
    $want = join ' ', map { "$_=" . ($sb->{auth}{$_} // 0) }
                      qw(ok missing invalid expired);
    $ok->($want eq 'ok=8 missing=2 invalid=1 expired=1', "auth $want");

    my $redis = $b->eval("document.getElementById('redis').textContent");
    my $rl = 0;
    $rl += $sb->{rl}{$_} - ($sa->{rl}{$_} // 0) for keys %{ $sb->{rl} };
    my $errors = $sb->{rl}{ERROR} // 0;
    $ok->($redis eq "Errors: $rl{ERROR} of $rl rate limit decisions in the "
                    . "window were ERROR ($errors since start).",
          "redis health: $redis");

    my $tiles = $b->eval("JSON.stringify(['rps', 'total', 'err'].map("
                         . "function (id) { return document."
                         . "getElementById(id).textContent; }))");
    my ($rps, $total, $err) = @{ JSON::PP::decode_json($tiles) };
    my $all = 0;
    $all += $_->{n} for values %{ $sb->{route} };
    my $e5 = 0;
    $e5 += ($sb->{route}{$_}{st}{5} // 0)
           - (($sa->{route}{$_} || {})->{st}{5} // 0)
        for keys %{ $sb->{route} };
    $ok->($total eq $all && same($rps, $win / $dt)
          && $err =~ /^(\S+) %$/ && same($1, 100 * $e5 / $win),
          "tiles: $rps/s, $total requests, $err 5xx");

    # hostile label values are text, never markup
    $ok->($shown->{routes}{$main::evil}
          && $b->eval("document.images.length") == 0,
          "a route named like markup is shown as text");

    # refreshing by itself: every second once chosen
    $b->eval("var e = document.getElementById('every'); e.value = '1';"
             . " e.dispatchEvent(new Event('change')); 1");
    get("/api/missing") for 1 .. 5;
    my $n = $sb->{route}{'/api/missing'}{n} + 5;
    $ok->($b->wait_for("(function () { var r = JSON.parse("
                       . table_js('routes') . ").filter(function (r) {"
                       . " return r[0] == '/api/missing'; })[0];"
                       . " return r && r[2] == '$n'; })()", 5),
          "refreshed by itself: /api/missing at $n");

    my @problems = $b->problems;
    $ok->(!@problems, "no console errors" . join '', map { "\n# $_" }
                                                      @problems);

    redis_wait();

    if ($ENV{GW_STATUS_PAGE_PNG}) {
        $b->screenshot($ENV{GW_STATUS_PAGE_PNG});
    }

    $b->stop;

    return join '', @out;
}

run_tests();

__DATA__

=== TEST 1: curl, scrapers and Prometheus get the text formats as before
--- http_config
    gw_metrics_zone gwm 1m;
--- config
    location = /metrics { gw_metrics_endpoint; }
--- request eval
[("GET /metrics") x 7]
--- more_headers eval
[
"User-Agent: curl/7.88.1\nAccept: */*",
"X-Nothing: 1",
"Accept: $main::prometheus_accept",
"Accept: text/*, text/html;q=0.5",
"Accept: text/html, text/plain",
"Accept: text/html;q=0, */*",
"Accept: text/html;q=0.9, application/openmetrics-text",
]
--- response_headers_like eval
[
"Content-Type: text/plain; version=0.0.4; charset=utf-8\nVary: Accept",
"Content-Type: text/plain; version=0.0.4; charset=utf-8",
"Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8",
"Content-Type: text/plain; version=0.0.4; charset=utf-8",
"Content-Type: text/plain; version=0.0.4; charset=utf-8",
"Content-Type: text/plain; version=0.0.4; charset=utf-8",
"Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8",
]
--- response_body_like eval
[qr/^# HELP /, qr/^# HELP /, qr/\n# EOF\n\z/, qr/^# HELP /, qr/^# HELP /,
 qr/^# HELP /, qr/\n# EOF\n\z/]



=== TEST 2: a browser gets the page, with its policy and no caching
--- http_config
    gw_metrics_zone gwm 1m;
--- config
    location = /metrics { gw_metrics_endpoint; }
--- request eval
[("GET /metrics") x 3, "HEAD /metrics"]
--- more_headers eval
[
"User-Agent: $main::chrome\nAccept: $main::chrome_accept",
"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
"Accept: text/html",
"Accept: text/html",
]
--- response_headers eval
[("Content-Type: text/html; charset=utf-8\nVary: Accept\n"
  . "Cache-Control: no-store\nX-Content-Type-Options: nosniff\n"
  . "Referrer-Policy: no-referrer") x 4]
--- response_body_filters eval
sub {
    return $_[0] eq main::page_source() ? "the page of docs/\n"
           : $_[0] eq '' ? "empty\n" : "another page\n";
}
--- response_body eval
[("the page of docs/\n") x 3, "empty\n"]



=== TEST 3: the policy allows exactly the page's own style and script
--- http_config
    gw_metrics_zone gwm 1m;
--- config
    location = /metrics { gw_metrics_endpoint; }
--- init
my ($status, $h, $body) = GwMetrics::http_get("/metrics",
                                              headers => ["Accept: text/html"]);
my $csp = $h->{'content-security-policy'} // '';
my ($script) = $body =~ m{<script>(.*?)</script>}s;
my ($style) = $body =~ m{<style>(.*?)</style>}s;
my $sha = sub { my $d = Digest::SHA::sha256_base64($_[0]);
                $d .= '=' while length($d) % 4; "'sha256-$d'" };
Test::More::is($csp, join('; ', "default-src 'none'",
                          "script-src " . $sha->($script),
                          "style-src " . $sha->($style), "connect-src 'self'",
                          "img-src data:", "base-uri 'none'",
                          "form-action 'none'", "frame-ancestors 'none'"),
               "Content-Security-Policy: the hashes of the inline code");
Test::More::unlike($body, qr{(?:src|href)\s*=\s*["']?(?:https?:)?//}i,
                   "no external asset");
Test::More::cmp_ok(length $body, '<', 16384, "small: " . length($body));
--- request
GET /metrics
--- error_code: 200



=== TEST 4: the page in Chromium shows the traffic, refreshes itself, no console error
--- http_config eval
qq{
    gw_metrics_zone gwm 1m;
    gw_metrics_buckets 0.005 0.05 0.1 0.25 0.5 1;
    gw_ratelimit_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT timeout=200ms;
    gw_ratelimit_zone \$http_x_client_id zone=page rate=4r/m
                      algorithm=sliding_window;
    gw_ratelimit_log_level info;
}
--- config eval
qq{
    gw_metrics on;
    location /api/users {
        gw_auth_jwt api;
        gw_auth_jwt_key_file ../html/jwks.json;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/backend;
    }
    location /api/orders {
        gw_ratelimit zone=page;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/backend;
    }
    location /api/slow {
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/backend;
    }
    location /api/boom { return 503; }
    location /api/missing { return 404; }
    location /api/evil {
        gw_metrics_route '@{[ $main::evil =~ s/'/\\'/gr ]}';
        return 200;
    }
    location /backend { gw_metrics off; return 200 "backend\\n"; }
    location = /metrics { gw_metrics off; gw_metrics_endpoint; }
}
--- init
$main::result = main::browse();
Test::More::diag($main::result) if $ENV{TEST_VERBOSE};
--- request
GET /metrics
--- response_body_filters eval
sub { $main::result }
--- response_body_like chomp
\A(ok - [^\n]*\n)+\z
--- error_log
gw_ratelimit: redis
no reply within 200 ms
--- no_error_log
[alert]
[crit]
[emerg]
--- timeout: 30



=== TEST 5: the console watch fails when the page breaks: another policy forbids its script
--- http_config
    gw_metrics_zone gwm 1m;
--- config
    location = /metrics {
        gw_metrics_endpoint;
        add_header Content-Security-Policy "script-src 'none'";
    }
--- init
my $b = GwMetrics::Browser->start;
$b->navigate("http://127.0.0.1:" . GwMetrics::server_port() . "/metrics");
Time::HiRes::sleep(0.5);
my @p = $b->problems;
$b->stop;
Test::More::ok((grep { /Content Security Policy/ } @p),
               "a blocked script is reported: @p");
--- request
GET /metrics
--- error_code: 200



=== TEST 6: without the rate limit module the page says Redis is not in use
--- main_config eval
GwTest::load_modules('metrics')
--- http_config
    gw_metrics_zone gwm 1m;
--- config
    location /a { gw_metrics on; return 204; }
    location = /metrics { gw_metrics_endpoint; }
--- init
GwMetrics::http_get("/a") for 1 .. 2;
my $b = GwMetrics::Browser->start;
$b->navigate("http://127.0.0.1:" . GwMetrics::server_port() . "/metrics");
$b->wait_for("document.body && document.body.dataset.refreshes")
    or die "the page never showed data";
Test::More::is($b->eval("document.getElementById('redis').textContent"),
               "Not in use here: the rate limit module is not loaded.",
               "no Redis to speak of");
my $rows = JSON::PP::decode_json($b->eval(main::table_js('routes')));
Test::More::is(join(",", map { join " ", @$_[0 .. 8] } @$rows),
               "/a - 2 2 0 0 0 0 ",
               "one route, one sample: no rate yet");
Test::More::like(join(",", map { join " ", @$_[9 .. 11] } @$rows),
                 qr/^\d+\.\d+ \d+\.\d+ \d+\.\d+$/,
                 "percentiles since the start");
Test::More::is(join("; ", $b->problems), "", "no console errors");
$b->stop;
--- request
GET /metrics
--- error_code: 200
