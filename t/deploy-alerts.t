# Copyright (C) nginx-gw authors
# deploy/prometheus/: the alerting rules pass promtool check rules, their
# unit tests pass promtool test rules, every alert has a test where it fires
# and one where it stays quiet, and the rules cover what the operations
# guide promises (5xx ratio and p99 latency per route, rate-limit rejection
# surge, Redis errors, auth failures by reason, the series cap, gateway
# down).  The metrics and labels they use are checked against a real scrape
# in t/deploy-dashboard.t.  A plain Test::More script.

use strict;
use warnings;

use Test::More;
use FindBin;
use YAML::XS ();

my $dir = "$FindBin::Bin/../deploy/prometheus";
my $rules = "$dir/nginx-gw-alerts.yml";
my $tests = "$dir/nginx-gw-alerts.test.yml";

my $out = qx{promtool check rules '$rules' 2>&1};
is($? >> 8, 0, 'promtool check rules') or diag $out;

$out = qx{cd '$dir' && promtool test rules '$tests' 2>&1};
is($? >> 8, 0, 'promtool test rules') or diag $out;
like($out, qr/SUCCESS/, 'the unit tests ran');

my ($r) = YAML::XS::LoadFile($rules);
my %expr;
for my $g (@{ $r->{groups} }) {
    for my $rule (@{ $g->{rules} }) {
        next unless $rule->{alert};
        ok(!exists $expr{ $rule->{alert} }, "$rule->{alert} is unique");
        $expr{ $rule->{alert} } = $rule->{expr};
        ok($rule->{labels}{severity}, "$rule->{alert} has a severity");
        ok($rule->{annotations}{summary} && $rule->{annotations}{description},
           "$rule->{alert} has a summary and a description");
    }
}

my ($t) = YAML::XS::LoadFile($tests);
my (%fires, %quiet);
for my $case (@{ $t->{tests} }) {
    for my $a (@{ $case->{alert_rule_test} || [] }) {
        if (@{ $a->{exp_alerts} || [] }) {
            $fires{ $a->{alertname} }++;
        } else {
            $quiet{ $a->{alertname} }++;
        }
    }
}
for my $a (sort keys %expr) {
    ok($fires{$a}, "$a: a unit test where it fires");
    ok($quiet{$a}, "$a: a unit test where it stays quiet");
}
ok(!grep({ !exists $expr{$_} } keys %fires, keys %quiet),
   'the unit tests name only alerts that exist');

# what the rules must cover
sub covers {
    my ($what, $re) = @_;
    ok((grep { $_ =~ $re } values %expr), "an alert on $what");
}
covers('the 5xx ratio per route',
       qr/sum by \(path\).*gateway_requests_total\{[^}]*status=~"5\.\."/s);
covers('p99 latency per route from the histograms',
       qr/histogram_quantile\(0\.99,\s*sum by \(path, le\)\s*\(rate\(gateway_request_duration_seconds_bucket/s);
covers('a surge of rate-limit rejections',
       qr/gateway_ratelimit_decisions_total\{[^}]*result="REJECTED"/);
covers('Redis errors (ERROR decisions)',
       qr/gateway_ratelimit_decisions_total\{[^}]*result="ERROR"/);
covers('authentication failures by reason',
       qr/sum by \(result\).*gateway_auth_decisions_total/s);
covers('the series cap being hit', qr/gateway_metrics_series_dropped_total/);
covers('a gateway down', qr/^up\{job="nginx-gw"\} == 0/);

# the scrape configuration names the job the rules select and loads them
my ($p) = YAML::XS::LoadFile("$dir/prometheus.yml");
ok((grep { $_->{job_name} eq 'nginx-gw' } @{ $p->{scrape_configs} }),
   'prometheus.yml scrapes job nginx-gw');
is_deeply($p->{rule_files}, ['nginx-gw-alerts.yml'],
          'prometheus.yml loads the rules');

done_testing();
