# Copyright (C) nginx-gw authors
# gw_ratelimit_fail local: the shared memory zone that counts when Redis
# gives no decision.  It never lets a client through unlimited: a flood of
# distinct keys evicts the least recently used ones (a long key is counted
# like a short one), and a worker SIGKILLed while it holds the zone's lock
# leaves the zone usable (the master releases the lock; nothing of the dead
# worker stays behind in the zone).
#
# One master and one worker: the master respawns a killed worker.  Redis is
# never reachable here ($TEST_NGINX_RAND_PORT_1: nothing listens).

use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwRedis;

repeat_each(1);
no_shuffle();
master_on();
workers(1);

our $Long = 'L' x 251;

sub flood {
    my ($n, $tag) = @_;
    my @reqs = map { ['/t', { 'X-Client-ID' => "$tag$_" }] } 1 .. $n;
    my @st = GwRedis::http_pipeline($ENV{TEST_NGINX_SERVER_PORT}, \@reqs);
    return scalar grep { $_ == 200 } @st;
}

sub master_pid {
    my $root = $ENV{TEST_NGINX_SERVROOT} || 't/servroot';
    open my $f, '<', "$root/logs/nginx.pid" or die "no nginx.pid: $!";
    chomp(my $pid = <$f>);
    return $pid;
}

GwTest::use_defaults(
    modules => ['ratelimit'],
    http_config => <<'END',
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    gw_ratelimit_zone $http_x_client_id zone=z rate=1r/m;
    gw_ratelimit_fail local;
    gw_ratelimit_local_size 32k;
    gw_ratelimit_log_level info;
END
    config => <<'END',
    location = /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        root html;
    }
END
    user_files => ">>> t\nok\n",
);

run_tests();

__DATA__

=== TEST 1: a flood of distinct short ids, then a 251-character id: limited
--- init
# a 32k zone holds a few hundred keys: these evict one another
Test::More::is(main::flood(1500, 'id'), 1500, "1500 new short ids admitted");
--- pipelined_requests eval
[("GET /t") x 5]
--- more_headers eval
"X-Client-ID: $main::Long"
--- error_code eval
[200, 429, 429, 429, 429]
--- response_headers eval
[("X-RL: ERROR") x 5]
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 2: long and short ids mixed in a flood: every id limited
--- init
my @reqs;
for my $i (1 .. 400) {
    my $id = ($i % 2 ? 'S' : 'X' x 200) . $i;
    push @reqs, map { ['/t', { 'X-Client-ID' => $id }] } 1, 2;
}
my @st = GwRedis::http_pipeline($ENV{TEST_NGINX_SERVER_PORT}, \@reqs);
my $bad = grep { $st[2 * $_] != 200 || $st[2 * $_ + 1] != 429 } 0 .. 399;
Test::More::is($bad, 0, "each of 400 ids: admitted, then rejected");
--- request
GET /t
--- more_headers
X-Client-ID: after-the-mix
--- error_code: 200
--- grep_error_log eval
qr/\[warn\] .*the local zone "gw_ratelimit_local" is full/
--- grep_error_log_out eval
qr/^[^\n]+\n\z/
--- error_log
limiting requests, excess: 1.000 by zone "z"
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 3: a worker SIGKILLed inside the zone's lock leaves it usable
--- init
use Time::HiRes qw(sleep time);
SKIP: {
    Test::More::skip("gdb cannot attach under valgrind", 6)
        if $ENV{TEST_NGINX_USE_VALGRIND};

    my $master = main::master_pid();
    my $w;
    for (1 .. 100) {
        ($w) = GwRedis::workers($master);
        last if $w;
        sleep 0.05;
    }
    die "no worker process of master $master\n" unless $w;
    my $root = $ENV{TEST_NGINX_SERVROOT} || 't/servroot';
    my $out = "$root/logs/gdb.log";

    # stop the worker where it holds the lock with the request's node
    # looked up, then kill it there (gdb's "kill" is a SIGKILL)
    my $gdb = fork // die "fork: $!";
    if ($gdb == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out;
        open STDERR, '>&', \*STDOUT;
        # make test-asan preloads the ASan runtime into everything it
        # starts; gdb does not run with it
        delete $ENV{LD_PRELOAD};
        exec 'gdb', '-q', '-nx', '-batch', '-p', $w,
             '-ex', 'break ngx_http_gw_ratelimit_local_eval',
             '-ex', 'continue', '-ex', 'kill'
            or POSIX::_exit(127);
    }
    my $ready = 0;
    for (1 .. 600) {
        if (open my $f, '<', $out) {
            local $/;
            my $log = <$f>;
            $ready = 1, last if $log =~ /^Breakpoint 1 at/m;
            last if $log =~ /ptrace|not permitted/i;
        }
        last if waitpid($gdb, POSIX::WNOHANG()) == $gdb;
        sleep 0.05;
    }
    Test::More::ok($ready, "gdb attached to worker $w")
        or Test::More::diag(`cat $out`);
    unless ($ready) {
        kill 'KILL', $gdb;
        waitpid $gdb, 0;
        Test::More::skip("gdb did not attach", 5);
    }

    my %r = GwRedis::http_get($ENV{TEST_NGINX_SERVER_PORT}, '/t',
                              'X-Client-ID' => 'victim');
    waitpid $gdb, 0;
    Test::More::is($r{status}, 0, "the worker died on that request");
    Test::More::ok(!kill(0, $w), "worker $w is gone");

    my $new;
    for (1 .. 100) {
        ($new) = grep { $_ != $w } GwRedis::workers($master);
        last if $new;
        sleep 0.05;
    }
    Test::More::ok($new, "the master started another worker");

    # the dead worker's key ages to the end of the LRU queue, and past it
    Test::More::is(main::flood(1500, 'k'), 1500, "1500 new ids admitted");

    my @st = GwRedis::http_pipeline($ENV{TEST_NGINX_SERVER_PORT},
                                    [map { ['/t', { 'X-Client-ID' => $_ }] }
                                     'fresh', 'fresh', 'fresh']);
    Test::More::is("@st", "200 429 429", "a new id is still limited");
}
--- request
GET /t
--- more_headers
X-Client-ID: last
--- error_code: 200
--- error_log eval
$ENV{TEST_NGINX_USE_VALGRIND}
? []
: [qr/\[alert\] .*exited on signal 9/,
   qr/\[alert\] .*shared memory zone "gw_ratelimit_local" was locked by \d+/]
--- no_error_log eval
[qr/\[alert\](?!.*(?:exited on signal 9|"gw_ratelimit_local" was locked))/,
 "[crit]", "[emerg]"]
