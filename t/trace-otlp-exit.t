# Copyright (C) nginx-gw authors
# gw_trace: on graceful shutdown a worker sends the spans it holds before
# it exits, within a short bound.  Test::Nginx runs nginx without a master
# process (a quit there is immediate), so this suite starts its own nginx
# with one, sends it SIGQUIT, and asks the collector stand-in
# (tools/otlp/collector) what arrived.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use Test::More;
use GwOtlp;

GwOtlp::start();

my $nginx = $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx';
my $build = $ENV{TEST_NGINX_BUILD_DIR} // "$FindBin::Bin/../build";
my $otlp = $ENV{TEST_NGINX_OTLP_PORT};
my $dir = tempdir("nginx-gw-otlp-exit.XXXXXX", TMPDIR => 1, CLEANUP => !$ENV{GW_KEEP});

my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                              LocalPort => 0, ReuseAddr => 1) or die $!;
my $port = $s->sockport;
close $s;

my $user = $> == 0 ? 'user root;' : '';

open my $f, '>', "$dir/nginx.conf" or die $!;
print $f <<"_EOC_";
load_module $build/ngx_http_gw_trace_module.so;
$user
worker_processes 1;
daemon on;
pid $dir/nginx.pid;
error_log $dir/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    gw_trace_otlp 127.0.0.1:$otlp/exit/v1/traces batch_size=100
                  interval=1h timeout=1s;
    server {
        listen 127.0.0.1:$port;
        location /t {
            gw_trace on;
            return 200 "ok\\n";
        }
    }
}
_EOC_
close $f;

sub http_get {
    my ($p, $uri) = @_;
    my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p", Timeout => 5)
        or return '';
    print $c "GET $uri HTTP/1.0\r\nHost: localhost\r\n\r\n";
    local $/;
    my $r = <$c> // '';
    $r =~ s/^.*?\r\n\r\n//s;
    return $r;
}

sub master_pid {
    open my $p, '<', "$dir/nginx.pid" or return 0;
    my $pid = <$p>;
    return ($pid // 0) + 0;
}

system($nginx, '-p', $dir, '-c', "$dir/nginx.conf", '-e',
       "$dir/error.log") == 0 or BAIL_OUT("nginx did not start");

for (1 .. 100) {
    last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port");
    sleep 0.05;
}

is(http_get($port, '/t'), "ok\n", 'request 1 served');
is(http_get($port, '/t'), "ok\n", 'request 2 served');

is(http_get($otlp, '/spans?path=/exit/v1/traces&n=1&wait=0.5'),
   "spans: 0\n", 'spans held in the batch while the worker runs');

my $master = master_pid();
ok($master, 'master pid');

# the master removes its pid file when it exits (a daemon's exit is not
# ours to wait for: kill 0 would see its zombie until init reaps it)

my $t0 = time;
kill 'QUIT', $master;

while (-e "$dir/nginx.pid" && time - $t0 < 5) {
    sleep 0.02;
}

my $took = time - $t0;
ok(!-e "$dir/nginx.pid", 'nginx exited');
cmp_ok($took, '<', 2, sprintf('within the bound (%.2fs)', $took));

my $spans = http_get($otlp, '/spans?path=/exit/v1/traces&n=2&wait=3');
like($spans, qr/^spans: 2\n/, 'both spans sent on the way out');
is(scalar(() = $spans =~ /^name: GET \/t$/mg), 2, 'two GET /t spans');

open my $log, '<', "$dir/error.log" or die $!;
my @bad = grep { /\[(?:error|crit|alert|emerg)\]/ } <$log>;
is_deeply(\@bad, [], 'no errors logged');

kill 'TERM', $master if -e "$dir/nginx.pid";

done_testing();
