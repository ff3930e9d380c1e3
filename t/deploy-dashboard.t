# Copyright (C) nginx-gw authors
# deploy/grafana/nginx-gw-dashboard.json and deploy/prometheus/*.yml against
# a real scrape: the demo gateway (examples/nginx.conf with its backends and
# a private Redis, as make run starts it, on free ports) serves a little
# traffic of every kind (200, 404, 401 missing/invalid/expired, 429, a cache
# hit, then a request while Redis is down: ERROR), and every metric, label
# name and label value that the dashboard's queries and variables and the
# alerting rules use must exist in the scrape (or, for values this demo
# cannot produce, among the module's own values).  Every dashboard query
# also passes promtool's PromQL parser.  A plain Test::More script.

use strict;
use warnings;

use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use GwDeploy;
use GwMetrics ();
use JSON::PP ();
use YAML::XS ();

my $top = GwDeploy::top();
my $dash = JSON::PP::decode_json(
    GwDeploy::read_file("$top/deploy/grafana/nginx-gw-dashboard.json"));
my ($rules) = YAML::XS::LoadFile("$top/deploy/prometheus/nginx-gw-alerts.yml");

# --- the dashboard's shape -------------------------------------------------

is($dash->{uid}, 'nginx-gw', 'dashboard uid');
my %vars = map { $_->{name} => $_ } @{ $dash->{templating}{list} };
ok($vars{datasource} && $vars{datasource}{query} eq 'prometheus',
   'a Prometheus data source variable');
my (%ids, @queries);
for my $p (@{ $dash->{panels} }) {
    ok(!$ids{ $p->{id} }++, "panel id $p->{id} is unique");
    my $g = $p->{gridPos};
    ok($g->{x} >= 0 && $g->{x} + $g->{w} <= 24, "panel '$p->{title}' fits 24 columns");
    next if $p->{type} eq 'row';
    ok(@{ $p->{targets} || [] }, "panel '$p->{title}' has queries");
    is($p->{datasource}{uid}, '${datasource}', "panel '$p->{title}' uses the variable");
    for my $t (@{ $p->{targets} }) {
        push @queries, { what => "panel '$p->{title}' $t->{refId}",
                         expr => $t->{expr}, legend => $t->{legendFormat} };
    }
}
my %want = map { $_ => 1 } ('Requests/s by route', 'Status mix',
    'Request latency p50 by route', 'Request latency p99 by route',
    'Auth decisions', 'Rate-limit decisions', 'Connections',
    'Metrics series usage');
my %have = map { $_->{title} => 1 } @{ $dash->{panels} };
ok($have{$_}, "a panel '$_'") for sort keys %want;

# the queries as Grafana sends them, with the variables set to "All"
sub concrete {
    my $e = shift;
    $e =~ s/\$__rate_interval/1m/g;
    $e =~ s/\$(?:instance|path)\b/.*/g;
    return $e;
}

# every query parses: promtool reads them as recording rules
my $tmp = GwDeploy::tmpdir();
my $n = 0;
GwDeploy::write_file("$tmp/dashboard-rules.yml", YAML::XS::Dump({ groups => [{
    name => 'dashboard',
    rules => [ map { { record => 'dashboard:q' . $n++,
                       expr => concrete($_->{expr}) } } @queries ] }] }));
my $out = qx{promtool check rules '$tmp/dashboard-rules.yml' 2>&1};
is($? >> 8, 0, 'promtool parses every dashboard query (' . scalar(@queries)
   . ')') or diag $out;

for my $v (qw(instance path)) {
    my ($m, $l) = $vars{$v}{definition} =~ /^label_values\((\w+)\{[^}]*\}, (\w+)\)$/;
    push @queries, { what => "variable \$$v", expr => "$m", labels => [$l] };
}
for my $g (@{ $rules->{groups} }) {
    for my $r (@{ $g->{rules} }) {
        my $a = join ' ', values %{ $r->{annotations} || {} };
        push @queries, { what => "alert $r->{alert}", expr => $r->{expr},
                         labels => [ $a =~ /\$labels\.(\w+)/g ] };
    }
}

# --- a real scrape of the demo ---------------------------------------------

my $demo = GwDeploy::start_demo();
my $gw = $demo->{gw};
my $alice = $demo->{token}->(sub => 'alice', exp => time + 3600);
my %auth = (Authorization => "Bearer $alice");
my %seen;

sub req {
    my ($path, %h) = @_;
    my ($st) = GwDeploy::http($gw, $path, %h);
    $seen{$st}++;
    return $st;
}

is(req('/api/users', %auth), 200, 'demo: /api/users with a token');
req('/api/users/42', %auth);
is(req('/api/orders', %auth), 200, 'demo: /api/orders');
is(req('/api/products', %auth), 200, 'demo: /api/products');
is(req('/api/nothing-here', %auth), 404, 'demo: unknown /api/ route 404');
is(req('/api/users'), 401, 'demo: no token 401');
is(req('/api/users', Authorization => 'Bearer not.a.token'), 401,
   'demo: a malformed token 401');
is(req('/api/users', Authorization => 'Bearer '
       . $demo->{token}->(sub => 'bob', exp => time - 3600)), 401,
   'demo: an expired token 401');
my %codes;
$codes{ req('/api/orders', %auth, 'X-Client-ID' => 'dashboard-test') }++
    for 1 .. 101;
is_deeply(\%codes, { 200 => 100, 429 => 1 },
          'demo: 100 calls per 60 s per X-Client-ID, then 429');

# Redis goes away: the decision is ERROR (gw_ratelimit_fail local admits)
GwDeploy::stop_pid($demo->{redis_pid});
ok(req('/api/orders', %auth, 'X-Client-ID' => 'dashboard-test-2'),
   'demo: Redis down, the request follows gw_ratelimit_fail');

my ($st, undef, $body) = GwDeploy::http($demo->{metrics}, '/metrics');
is($st, 200, 'the scrape');
my $scrape = GwMetrics::parse_exposition($body, 'text');
is_deeply($scrape->{errors}, [], 'the scrape parses');

# metric -> { label -> { value -> 1 } }
my %metric;
for my $s (@{ $scrape->{series} }) {
    my ($name, $labels) = @$s;
    $metric{$name} //= {};
    $metric{$name}{$_}{ $labels->{$_} } = 1 for keys %$labels;
}
ok($metric{gateway_ratelimit_decisions_total}{result}{$_},
   "the scrape has gateway_ratelimit_decisions_total{result=\"$_\"}")
    for qw(PASSED REJECTED ERROR);
ok($metric{gateway_auth_decisions_total}{result}{$_},
   "the scrape has gateway_auth_decisions_total{result=\"$_\"}")
    for qw(ok missing invalid expired);

# values this demo cannot produce (a failed key request: no key request
# here) must be values the modules set
my $auth_src = GwDeploy::read_file("$top/ngx_http_gw_auth_module.c");
my $rl_src = GwDeploy::read_file("$top/ngx_http_gw_ratelimit_module.c");
my %module_value = (
    gateway_auth_decisions_total => { result => $auth_src },
    gateway_ratelimit_decisions_total => { result => $rl_src },
);

# labels Prometheus adds to every target
my %target = (job => 1, instance => 1);

for my $q (@queries) {
    my $e = concrete($q->{expr});
    (my $bare = $e) =~ s/"(?:[^"\\]|\\.)*"/""/g;    # no string contents
    my @names = grep { !/^(?:by|without|on|ignoring|group_left|group_right
                            |sum|rate|increase|histogram_quantile|absent
                            |and|or|unless|offset|bool|count|max|min|avg
                            |le|vector)$/x }
                $bare =~ /\b([a-z_][a-z0-9_]*)\s*(?=\{|\[|\)|$|\s)/g;
    my @metrics = grep { /^(?:gateway_|up$)/ } @names;
    ok(@metrics, "$q->{what}: uses a metric") or next;
    my %labels = %target;
    for my $m (@metrics) {
        if ($m eq 'up') {
            like($e, qr/up\{job="nginx-gw"\}/, "$q->{what}: up of job nginx-gw");
            next;
        }
        ok($metric{$m}, "$q->{what}: $m is in the scrape") or next;
        $labels{$_} = 1 for keys %{ $metric{$m} };
    }
    # label names: matchers, by/without/on/ignoring lists, legends, $labels
    my @used = $e =~ /(\w+)\s*(?:=~|!~|!=|=)\s*"/g;
    push @used, map { split /\s*,\s*/ }
                $e =~ /\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g;
    push @used, ($q->{legend} // '') =~ /\{\{\s*(\w+)\s*\}\}/g;
    push @used, @{ $q->{labels} || [] };
    for my $l (grep { length } @used) {
        ok($labels{$l}, "$q->{what}: label $l exists on its metrics");
    }
    # label values of exact matchers
    while ($e =~ /\b(gateway_\w+)\{([^}]*)\}/g) {
        my ($m, $sel) = ($1, $2);
        while ($sel =~ /(\w+)="([^"]*)"/g) {
            my ($l, $v) = ($1, $2);
            next if $target{$l};
            if ($metric{$m}{$l}{$v}) {
                pass("$q->{what}: $m\{$l=\"$v\"} is in the scrape");
            } else {
                my $src = $module_value{$m}{$l} // '';
                ok(index($src, "ngx_string(\"$v\")") >= 0,
                   "$q->{what}: $m\{$l=\"$v\"} is a value the module sets");
            }
        }
    }
}

GwDeploy::stop_nginx($demo->{prefix});
unlike(GwDeploy::read_file("$demo->{prefix}/logs/error.log"),
       qr/\[(?:alert|crit|emerg)\]/, 'no alert in the demo gateway\'s error log');

done_testing();
