# Copyright (C) nginx-gw authors
#!/usr/bin/perl
# The fault scenarios of `make faults` (faults/*), each run on a tiny scale
# (FAULTS_SCALE=tiny: short loads, short outages, small request counts), to
# check that their measuring and judging work, not the modules' figures:
#
# - a run completes, prints one PASS/FAIL line per run and its figures, and
#   its exit status agrees with them;
# - every check of a healthy run passes; the checks that a known module
#   defect fails (fixed on other branches) are TODO here, named with the
#   defect, so that they show as "unexpectedly succeeded" once fixed;
# - the same figures judged again (FAULTS_JUDGE) against an impossibly
#   tight bound FAIL, naming the bound's check, and against the defaults
#   give the same verdicts (the judge is deterministic).
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use JSON::PP;
use Test::More;

my $top = abs_path(dirname(abs_path(__FILE__)) . '/..');
my $tmp = tempdir('gw-faults-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# the scenarios need these (.ci/deps test installs them): their absence is
# a failure, not a skip
for my $tool (qw(wrk gdb redis-server)) {
    if (system("command -v $tool >/dev/null 2>&1") != 0) {
        fail("$tool is installed");
        done_testing();
        exit 1;
    }
}

# checks that a known defect fails: "title|check" (a regex) => the defect
my @known = (
);

sub known {
    my ($title, $check) = @_;
    for my $k (@known) {
        return $k->[1] if "$title|$check" =~ $k->[0];
    }
    return undef;
}

# scenario => [ bound to make impossible, its value, the check it fails,
#               the runs it applies to (regex) ]
my @scenarios = (
    ['redis-outage', 'LATENCY_MS', 0, 'p99', qr/./],
    ['reload', 'EXTRA_FAILURES', -1, 'failures', qr/./],
    ['worker-kill', 'ANSWER_MS', -1, 'zone usable', qr/lock/],
    ['memory', 'RSS_GROWTH_KB', -1, 'rss bounded', qr/./],
    ['hostile-redis', 'LATENCY_MS', 0, 'latency', qr/./],
    ['hostile-jwks', 'RECOVERY_MS', -1, 'recovery', qr/./],
);

sub run {
    my ($name, %env) = @_;

    local %ENV = (%ENV, %env);
    my $out = `$top/faults/$name 2>&1`;
    return ($? >> 8, $out);
}

sub slurp_json {
    my ($file) = @_;
    open my $in, '<', $file or return {};
    local $/;
    return decode_json(<$in>);
}

for my $s (@scenarios) {
    my ($name, $bound, $value, $check, $which) = @$s;
    my $figs = "$tmp/$name.json";

    my ($rc, $out) = run($name, FAULTS_SCALE => 'tiny',
                         FAULTS_OUT => "$tmp/out",
                         FAULTS_FIGURES => $figs);
    my $all = slurp_json($figs);
    my @titles = sort keys %$all;

    ok(@titles, "$name: ran and recorded figures")
        or diag($out);

    my $any_failed = 0;

    for my $t (@titles) {
        my $run = $all->{$t};
        my $verdict = $run->{verdict};

        like($out, qr/^\Q$verdict $t\E(:|$)/m, "$t: says $verdict");
        ok(keys %{ $run->{figures} } && @{ $run->{checks} },
           "$t: figures and checks");

        my $all_ok = 1;
        for my $c (@{ $run->{checks} }) {
            $all_ok &&= $c->{ok};
            my $defect = known($t, $c->{name});
            # make test-asan: ASan's quarantine and shadow memory are in
            # every worker's RSS
            $defect //= 'under ASan, RSS is not the modules\' memory'
                if $ENV{GW_ASAN} && $c->{name} =~ /^rss/;
            TODO: {
                local $TODO = "known defect: $defect" if $defect;
                ok($c->{ok}, "$t: $c->{name}")
                    or diag("  $c->{detail}");
            }
        }

        is($verdict, $all_ok ? 'PASS' : 'FAIL',
           "$t: verdict agrees with its checks");
        $any_failed ||= !$all_ok;
    }

    is($rc, $any_failed ? 1 : 0, "$name: exit status agrees");

    # the same figures, judged again
    my ($jrc, $jout) = run($name, FAULTS_SCALE => 'tiny',
                           FAULTS_JUDGE => $figs);
    for my $t (@titles) {
        like($jout, qr/^\Q$all->{$t}{verdict} $t\E(:|$)/m,
             "$t: judged again, the same verdict");
    }
    is($jrc, $rc, "$name: judged again, the same exit status");

    # and against an impossible bound
    my ($trc, $tout) = run($name, FAULTS_SCALE => 'tiny',
                           FAULTS_JUDGE => $figs,
                           "FAULTS_BOUND_$bound" => $value);
    is($trc, 1, "$name: FAULTS_BOUND_$bound=$value fails");
    for my $t (grep { $_ =~ $which } @titles) {
        like($tout, qr/^FAIL \Q$t\E: .*\Q$check\E/m,
             "$t: FAULTS_BOUND_$bound=$value fails \"$check\"");
    }
}

done_testing();
