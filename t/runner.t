# Copyright (C) nginx-gw authors
#!/usr/bin/perl
# Tests of the project's compat Test::Nginx runner (t/compat) itself.
#
# Runs the sample suites in t/compat/samples with `perl -I t/compat`, so it
# tests t/compat whichever Test::Nginx is on PERL5LIB, each with its own
# server root and port, and checks what they report: passes AND failures
# (a runner that only ever passes is worthless), loud refusals, and that no
# nginx is left running.
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

my $top = abs_path(dirname(abs_path(__FILE__)) . '/..');
my $nginx = $ENV{TEST_NGINX_BINARY}
            || (-x '/usr/sbin/nginx' ? '/usr/sbin/nginx' : 'nginx');
plan skip_all => "no nginx binary ($nginx)"
    unless (`$nginx -v 2>&1` // '') =~ m{nginx/};

my $tmp = tempdir('gw-runner-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $servroot = "$tmp/servroot";

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1) or die $!;
    return $s->sockport;
}

sub slurp {
    open my $in, '<', shift or return '';
    local $/;
    return scalar <$in>;
}

# a pid from the sample's pid file that is still running (not a zombie)?
sub nginx_left {
    my $pid = slurp("$servroot/logs/nginx.pid");
    return 0 unless $pid =~ /(\d+)/;
    $pid = $1;
    for (1 .. 100) {
        my $st = slurp("/proc/$pid/stat");
        return 0 if !kill(0, $pid) || $st =~ /^\d+ \(.*\) [ZX] /s;
        sleep 0.01;
    }
    return $pid;
}

# Runs one sample; returns its TAP parsed: ok / not-ok names, plan, exit
# code, stderr.  %env is added to a TEST_NGINX_*-free environment.
sub run_sample {
    my ($file, %opt) = @_;
    my $env = $opt{env} || {};
    my $port = free_port();
    local %ENV = %ENV;
    delete @ENV{grep { /^TEST_NGINX_/ } keys %ENV};
    # the samples run stock nginx only, and one kills it with SIGSEGV: keep
    # make test-asan's runtime (and its report files) out of them
    delete @ENV{qw(LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS)};
    %ENV = (%ENV, TEST_NGINX_BINARY => $nginx, TEST_NGINX_PORT => $port,
            TEST_NGINX_SERVROOT => $servroot, %$env);
    my $cwd = $opt{cwd} || $top;
    my $t0 = time;
    my $out = `cd $cwd && $^X -I$top/t/compat $top/t/compat/samples/$file 2>$tmp/err`;
    my %r = (rc => $? >> 8, err => slurp("$tmp/err"), out => $out,
             secs => time - $t0, ok => [], fail => []);
    for (split /\n/, $out) {
        push @{ $r{$1 ? 'fail' : 'ok'} }, $2 if /^(not )?ok \d+ - (.*)/;
        $r{plan} = $1 if /^1\.\.(\d+)/;
    }
    ok(!nginx_left(), "$file: no nginx left running");
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 1);
    ok(!$c, "$file: nothing listens on its port any more");
    note(sprintf "%s: %.2fs, %d ok, %d not ok", $file, $r{secs},
         scalar @{ $r{ok} }, scalar @{ $r{fail} });
    return \%r;
}

# the failures of block N of a sample
sub fails_of {
    my ($r, $n) = @_;
    return grep { /\bTEST $n: / } @{ $r->{fail} };
}

# --- a sample covering every implemented section passes -----------------
{
    my $r = run_sample('sections.t');
    is($r->{rc}, 0, 'sections.t: exit code 0');
    is(scalar @{ $r->{fail} }, 0, 'sections.t: no failures')
        or diag(join "\n", @{ $r->{fail} }, $r->{err});
    # 334 under upstream Test::Nginx 0.33 as well (t/compat/README)
    is(scalar @{ $r->{ok} }, 334, 'sections.t: 334 tests pass');
    is($r->{plan}, 334, 'sections.t: plan 1..334 (no_plan)');
    my %want = (
        'TEST 9: .*response_body - response is expected \(repeated req 1, '
            . 'req 2\)' => 'pipelined: third response of the second round',
        'TEST 8: .*header X-Which not present' => 'request arrays: !Name',
        'TEST 12: .*tcp_query ok' => 'tcp_query checked',
        'TEST 22: .*die as expected' => 'must_die checked',
        'TEST 23: .*die with the expected exit code' => 'must_die: code',
        'TEST 17: .*grep_error_log_out \(req 1\)' => 'grep_error_log',
        'TEST 18: .*matches a line in access.log' => 'access_log',
    );
    for my $pat (sort keys %want) {
        ok(scalar(grep { /$pat/ } @{ $r->{ok} }), "sections.t: $want{$pat}");
    }
}

# --- a wrong expectation of each kind fails ----------------------------
{
    my $r = run_sample('failures.t');
    my @want = (
        undef,
        'status code ok',
        'response_body - response is expected',
        'header X-Gw ok',
        'header X-Gw not present in the raw headers',
        'header X-Gw like ok',
        'response_body_like - response is expected',
        'response_body_unlike - response is expected',
        'pattern "this line never appears" should match a line in error.log',
        'pattern "\[error\]" should not match any line in error.log',
        'pattern "never logged" should match a line in access.log',
        'pattern "GET /t" should not match any line in access.log',
        'grep_error_log_out',
        'die as expected',
        'ERROR: client socket timed out',
        'tcp_query ok',
        'response_body - response is expected \(repeated req 0, req 1\)',
        'status code ok',
        'die with the expected exit code',
    );
    for my $n (1 .. $#want) {
        my @f = fails_of($r, $n);
        ok(@f == 1 && $f[0] =~ /$want[$n]/,
           "failures.t TEST $n: exactly one failure: $want[$n]")
            or diag("got: @f");
    }
    is(scalar @{ $r->{fail} }, 18, 'failures.t: 18 failures in all');
    is(scalar @{ $r->{ok} }, 20, 'failures.t: the other 20 tests pass');
    isnt($r->{rc}, 0, 'failures.t: non-zero exit code');
    like($r->{err}, qr/got: .*hello.*expected: .*goodbye/s,
         'failures.t: a body mismatch shows got and expected');
}

# --- global knobs, a fixed plan, shuffled blocks -----------------------
{
    my $r = run_sample('globals.t');
    is($r->{rc}, 0, 'globals.t: passes');
    is(scalar @{ $r->{ok} }, 8, 'globals.t: 8 tests, as planned');
}

# --- what the runner refuses, loudly ------------------------------------
{
    my $r = run_sample('unknown.t');
    is_deeply([fails_of($r, 1)], [], 'unknown.t: a good block still passes');
    is(scalar(grep { /TEST 1: / } @{ $r->{ok} }), 2,
       'unknown.t: ... with its 2 tests');
    my %want = (
        2 => 'section --- respone_body is unknown or not implemented',
        3 => 'section --- error_code_like is unknown or not implemented',
        4 => '--- request contains \$TEST_NGINX_SERVER_PORT, which '
             . 'Test::Nginx does not expand',
        5 => 'no --- config section',
    );
    for my $n (sort keys %want) {
        my @f = fails_of($r, $n);
        ok(@f == 1 && $f[0] =~ /$want{$n}/, "unknown.t TEST $n: $want{$n}")
            or diag("got: @f");
    }
    is(scalar(grep { !/TEST 1: / } @{ $r->{ok} }), 0,
       'unknown.t: refused blocks run no tests');

    $r = run_sample('die-global.t');
    isnt($r->{rc}, 0, 'die-global.t: an unimplemented global dies');
    like($r->{err}, qr/use_hup\(\) is not implemented/,
         'die-global.t: ... naming it');

    $r = run_sample('globals.t', env => { TEST_NGINX_USE_HTTP2 => 1 });
    isnt($r->{rc}, 0, 'TEST_NGINX_USE_HTTP2=1: an unsupported mode dies');
    like($r->{err}, qr/TEST_NGINX_USE_HTTP2 is not supported/,
         'TEST_NGINX_USE_HTTP2=1: ... naming it');

    $r = run_sample('undef-env.t');
    like($r->{out}, qr/^Bail out!.*No environment TEST_NGINX_GW_NOT_SET_ANYWHERE/m,
         'undef-env.t: an undefined $TEST_NGINX_ variable bails out');
}

# --- nginx failing to start, dying mid-block; TEST_NGINX_LOAD_MODULES --
{
    my $r = run_sample('edge.t');
    my @f = fails_of($r, 1);
    ok(@f == 1 && $f[0] =~ /nginx failed to start/,
       'edge.t: a config error without must_die fails the block');
    like($r->{err}, qr/unknown directive "gw_no_such_directive"/,
         'edge.t: ... showing nginx\'s message');
    ok(scalar(grep { /nginx is still running at the end of the block/ }
              fails_of($r, 2)), 'edge.t: nginx dying mid-block is a failure');
    is_deeply([fails_of($r, 3)], [], 'edge.t: the next block passes');

    $r = run_sample('load-modules.t', env => {
        TEST_NGINX_LOAD_MODULES => '/nonexistent/ngx_gw_missing_module.so' });
    is($r->{rc}, 0, 'TEST_NGINX_LOAD_MODULES becomes a load_module line');
}

# --- interrupted: nothing left behind ------------------------------------
{
    my $port = free_port();
    my $pid = fork // die;
    if (!$pid) {
        %ENV = (%ENV, TEST_NGINX_BINARY => $nginx, TEST_NGINX_PORT => $port,
                TEST_NGINX_SERVROOT => $servroot);
        delete $ENV{TEST_NGINX_USE_VALGRIND};
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        chdir $top;
        exec $^X, "-I$top/t/compat", 't/compat/samples/sections.t';
    }
    my $until = time + 10;
    sleep 0.05 until -s "$servroot/logs/access.log" || time > $until;
    sleep 0.3;
    kill 'INT', $pid;
    waitpid $pid, 0;
    ok(!nginx_left(), 'interrupted run: no nginx left running');
    ok(!IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                              Timeout => 1),
       'interrupted run: nothing listens on its port');
}

# --- valgrind: a clear failure on what it finds --------------------------
SKIP: {
    skip 'valgrind is not installed', 3
        unless `valgrind --version 2>&1` =~ /valgrind/;
    # with t/valgrind.suppress (stock nginx's exit-time leaks) all passes
    my $r = run_sample('globals.t', env => { TEST_NGINX_USE_VALGRIND => 1 });
    is($r->{rc}, 0, 'valgrind: globals.t passes with t/valgrind.suppress');
    # without it, stock nginx's worker leaks must fail the blocks
    $r = run_sample('globals.t', cwd => $tmp,
                    env => { TEST_NGINX_USE_VALGRIND => 1 });
    is(scalar(grep { /valgrind reported errors/ } @{ $r->{fail} }), 2,
       'valgrind: without suppressions each block reports the leaks');
    like($r->{err}, qr/definitely lost/, 'valgrind: ... showing the report');
}

done_testing();
