# Copyright (C) nginx-gw authors
#!/usr/bin/perl
# examples/run-demo (make run) itself, on free ports (GW_DEMO_PORT_BASE...)
# and in a terminal of its own (script(1) gives it a pty in a new session):
#
#   - the default layout serves the demo; Ctrl-C stops it with status 0;
#   - REPLICAS=3: the balancer spreads requests over three gateways that
#     share one Redis, so a client's limit holds across them; then the
#     terminal goes away (script killed: a real hangup) while a session
#     leader that survives SIGHUP and waits, as make does, runs the demo;
#   - a port already taken: the demo names the process that holds it;
#
# and after each: no process left that runs from the demo's prefix, Redis
# gone, the temporary directory (with the demo's private key) removed.
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG setsid _exit);
use Test::More;
use Time::HiRes qw(sleep time);

my $top = abs_path(dirname(abs_path(__FILE__)) . '/..');
my $tmp = tempdir('gw-demo-run-XXXXXX', TMPDIR => 1, CLEANUP => 1);

plan skip_all => 'script(1) is missing' if system('script -V >/dev/null 2>&1');

$ENV{NGINX_BIN} = $ENV{TEST_NGINX_BINARY} if $ENV{TEST_NGINX_BINARY};
$ENV{BUILD} = $ENV{TEST_NGINX_BUILD_DIR} if $ENV{TEST_NGINX_BUILD_DIR};
$ENV{TMPDIR} = $tmp;

sub port_free {
    my $p = shift;
    return !IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p,
                                  Timeout => 1)
           && IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                    LocalPort => $p, ReuseAddr => 1,
                                    Listen => 1);
}

# a range of free ports: n of them from a random start
sub free_range {
    my $n = shift;
    for (1 .. 100) {
        my $b = 20000 + int rand 40000;
        return $b unless grep { !port_free($_) } $b .. $b + $n - 1;
    }
    die "no $n free ports in a row";
}

sub slurp {
    open my $fh, '<', shift or return '';
    local $/;
    return scalar <$fh>;
}

sub wait_for {
    my ($what, $secs) = @_;
    my $until = time + $secs;
    while (time < $until) {
        my $v = $what->();
        return $v if $v;
        sleep 0.05;
    }
    return undef;
}

sub http_get {
    my ($port, $path, @headers) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 5) or return (0, "connect: $!");
    print $s "GET $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n",
             map({ "$_\r\n" } @headers), "\r\n";
    local $/;
    my $r = <$s> // '';
    my ($code) = $r =~ m{^HTTP/1\.1 (\d+)};
    my (undef, $body) = split /\r\n\r\n/, $r, 2;
    return ($code // 0, $body // '', $r);
}

# what still runs from the prefix: nginx names it on its command line,
# redis-server runs in it
sub leftovers {
    my $run = shift;
    my @left;
    for my $p (glob '/proc/[0-9]*') {
        my $cmd = slurp("$p/cmdline") =~ tr/\0/ /r;
        my $cwd = readlink("$p/cwd") // '';
        push @left, $p =~ s{/proc/}{}r . ": $cmd"
            if index($cmd, $run) >= 0 || index($cwd, $run) == 0;
    }
    return @left;
}

# run-demo in a pty of its own; returns (script's pid, its stdin, log file)
my $demos = 0;

sub start_demo {
    my %env = @_;
    my $leader = delete $env{leader};
    my $log = "$tmp/demo-" . ++$demos . ".log";
    my $cmd = "$top/examples/run-demo";

    # make as the session leader: SIGHUP reaches it alone, and it waits
    $cmd = "perl -e '\$SIG{HUP} = sub {}; exit system \@ARGV' $cmd"
        if $leader;

    pipe my $r, my $w or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        setsid();
        close $w;
        open STDIN, '<&', $r or _exit(1);
        open STDOUT, '>', $log or _exit(1);
        open STDERR, '>&', \*STDOUT or _exit(1);
        @ENV{keys %env} = values %env;
        # script runs $SHELL -c (dash for a CI job without SHELL): exec, so
        # that no shell stands between the terminal's SIGINT and the demo
        { exec 'script', '-qfec', "exec $cmd", '/dev/null' };
        _exit(127);
    }
    close $r;
    $w->autoflush(1);
    return ($pid, $w, $log);
}

sub check_gone {
    my ($name, $run, $redis, $otlp) = @_;
    my @left = wait_for(sub { my @l = leftovers($run); @l ? () : 1 }, 10)
               ? () : leftovers($run);
    is_deeply(\@left, [], "$name: no process runs from the prefix");

    # a failed test must not leave them running either
    kill 'KILL', map { /^(\d+)/ } @left;

    ok(wait_for(sub { port_free($redis) }, 5), "$name: redis stopped");
    ok(wait_for(sub { port_free($otlp) }, 5),
       "$name: the span collector stopped");
    ok(wait_for(sub { !-e $run }, 5),
       "$name: the prefix and its private key are removed");
}

# --- the default layout, Ctrl-C ---------------------------------------------

{
    my $base = free_range(4);
    my $bbase = free_range(4);
    my $redis = free_range(1);
    my $otlp = free_range(1);
    my ($pid, $tty, $log) = start_demo(GW_DEMO_PORT_BASE => $base,
                                       GW_DEMO_BACKEND_BASE => $bbase,
                                       GW_DEMO_REDIS_PORT => $redis,
                                       GW_DEMO_OTLP_PORT => $otlp);
    my ($run) = wait_for(sub { slurp($log) =~ /RUN=(\S+)/ ? $1 : undef }, 60);
    ok($run, 'default: the demo starts') or diag slurp($log);
    $run //= "$tmp/none";

    ok(-s "$run/demo-key.pem", 'default: the private key is in the prefix');

    my $token = slurp("$run/alice.token");
    chomp $token;
    my ($code, $body) = http_get($base, '/api/batch',
                                 "Authorization: Bearer $token");
    is($code, 200, 'default: /api/batch answers');
    like($body, qr/^\{"user":\{"service":"user-service".*"orders":\{"service":"order-service".*"products":\{"service":"product-service"/,
         'default: the batch holds the three services');
    ($code) = http_get($base + 2, '/api/unknown');
    is($code, 401, 'default: the second instance authenticates first');
    ok(wait_for(sub { slurp("$run/logs/spans.log")
                      =~ m{GET /api/batch} ? 1 : undef }, 10),
       'default: the span collector prints the spans')
        or diag slurp("$run/logs/spans.log");

    print $tty "\003";                      # Ctrl-C on its terminal
    my $st = wait_for(sub { waitpid($pid, WNOHANG) == $pid ? [$?] : undef },
                      15);
    ok($st, 'default: Ctrl-C stops the demo');
    is($st && $st->[0] >> 8, 0, 'default: Ctrl-C is a normal stop: status 0');
    like(slurp($log), qr/stopping the demo\.\.\..*stopped\./s,
         'default: it says so');
    check_gone('default', $run, $redis, $otlp);
}

# --- REPLICAS=3: one limit across replicas; the terminal goes away, the
# session leader (like make) survives and waits ----------------------------

{
    my $base = free_range(14);
    my $bbase = free_range(4);
    my $redis = free_range(1);
    my $otlp = free_range(1);
    my ($pid, $tty, $log) = start_demo(leader => 'make', GW_DEMO_REPLICAS => 3,
                                       GW_DEMO_PORT_BASE => $base,
                                       GW_DEMO_BACKEND_BASE => $bbase,
                                       GW_DEMO_REDIS_PORT => $redis,
                                       GW_DEMO_OTLP_PORT => $otlp);
    my ($run) = wait_for(sub { slurp($log) =~ /RUN=(\S+)/ ? $1 : undef }, 60);
    ok($run, 'replicas: the demo starts') or diag slurp($log);
    $run //= "$tmp/none";

    my $token = slurp("$run/bob.token");
    chomp $token;
    my %codes;
    for (1 .. 101) {
        my ($code) = http_get($base, '/api/orders',
                              "Authorization: Bearer $token",
                              "X-Client-ID: run-$$");
        $codes{$code}++;
    }
    is_deeply(\%codes, { 200 => 100, 429 => 1 },
              'replicas: 100 calls per X-Client-ID through the balancer, '
              . 'then 429');

    for my $i (1 .. 3) {
        my ($code, $body) = http_get($base + $i, '/metrics');
        my $n = 0;
        $n += $1 while $body =~ m{^gateway_requests_total\{method="GET",path="/api/orders\@stable",status="\d+"\} (\d+)$}mg;
        ok($n >= 20, "replicas: gw$i served its share ($n of 101)");
    }

    kill 'KILL', $pid;                      # the terminal goes away
    waitpid $pid, 0;
    ok(wait_for(sub { !grep { slurp("$_/cmdline") =~ /^perl\0-e\0\$SIG\{HUP\}/ }
                           glob '/proc/[0-9]*' }, 10),
       'replicas (SIGHUP): the waiting session leader ends too');
    check_gone('replicas (SIGHUP)', $run, $redis, $otlp);
}

# --- a port in use: who holds it ------------------------------------------

{
    my $base = free_range(4);
    my $bbase = free_range(4);
    my $hold = IO::Socket::INET->new(LocalAddr => '127.0.0.1', Listen => 1,
                                     LocalPort => $bbase + 3, ReuseAddr => 1)
        or die "listen: $!";
    my $redis = free_range(1);
    my $otlp = free_range(1);
    local @ENV{qw(GW_DEMO_PORT_BASE GW_DEMO_BACKEND_BASE GW_DEMO_REDIS_PORT
                  GW_DEMO_OTLP_PORT)} = ($base, $bbase, $redis, $otlp);
    my $out = `$top/examples/run-demo 2>&1 </dev/null`;
    is($? >> 8, 1, 'busy port: the demo does not start');
    like($out, qr/port ${\($bbase + 3)} on 127\.0\.0\.1 is in use by pid $$ \(perl\)/,
         'busy port: it names the process that holds it');
    is_deeply([glob "$tmp/nginx-gw-demo.*"], [], 'busy port: nothing left');
}

done_testing();
