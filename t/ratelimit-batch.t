# Copyright (C) nginx-gw authors
# gw_ratelimit batching: the requests of a worker that arrive together are
# decided by one script call (at most 64 requests each).  Bursts of
# simultaneous requests, on two nginx instances, of one client or of
# several keys and zones, still admit exactly the limits; malformed batch
# replies make every request of the batch follow its fail policy (an error
# for one request fails that request alone); clients that leave while
# their batch is in flight change nothing for the others.

use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwRedis;

repeat_each(1);
no_shuffle();
master_on();
workers(1);
worker_connections(1024);

$ENV{TEST_NGINX_GWRL_PEER_PORT} = GwRedis::free_port();
$ENV{TEST_NGINX_GWRL_FAKE_PORT} = GwRedis::free_port();

our $Peer;
our $Fake;
our $FakeLog = ($ENV{TEST_NGINX_SERVROOT} || 't/servroot') . '-fake.log';

# The second instance, one worker like the test server: a burst larger
# than a batch must cross the batch boundary in each of them.
sub start_peer {
    GwRedis::stop($Peer) if $Peer;

    my $port = $ENV{TEST_NGINX_GWRL_PEER_PORT};
    my $redis = $ENV{TEST_NGINX_REDIS_PORT};
    my $root = ($ENV{TEST_NGINX_SERVROOT} || 't/servroot') . '-peer';

    $Peer = GwRedis::start_nginx(
        prefix => $root,
        port => $port,
        main => "load_module $ENV{TEST_NGINX_BUILD_DIR}/"
                . "ngx_http_gw_ratelimit_module.so;",
        config => <<"END");
events {
    worker_connections 1024;
}

http {
    access_log off;
    gw_ratelimit_redis 127.0.0.1:$redis timeout=5s;
    gw_ratelimit_log_level info;

    gw_ratelimit_zone \$arg_c zone=b_g rate=1r/m burst=99;
    gw_ratelimit_zone \$arg_c zone=b_s rate=100r/m algorithm=sliding_window;
    gw_ratelimit_zone \$arg_c zone=b_f rate=100r/h algorithm=fixed_window;

    server {
        listen 127.0.0.1:$port backlog=1024;

        location /g {
            gw_ratelimit zone=b_g nodelay;
            empty_gif;
        }

        location /s {
            gw_ratelimit zone=b_s;
            empty_gif;
        }

        location /f {
            gw_ratelimit zone=b_f;
            empty_gif;
        }
    }
}
END
}

sub redis { GwRedis::command($ENV{TEST_NGINX_REDIS_PORT}, @_) }

# calls of a command since the last CONFIG RESETSTAT
sub calls {
    my $cmd = shift;
    my $info = redis('INFO', 'commandstats');
    return $info =~ /cmdstat_$cmd:calls=(\d+)/ ? $1 : 0;
}

sub count { my $v = shift; scalar grep { $_ == $v } @_ }

# a fixed window key holds window * 2^21 + count
sub fixed_count {
    my $v = redis('GET', shift);
    return defined $v ? $v % 2097152 : undef;
}

# the fake Redis: SCRIPT LOAD gets +OK, a batch what $mode says
sub start_fake {
    my $mode = shift;
    GwRedis::stop($Fake) if $Fake;
    unlink $FakeLog;
    $Fake = GwRedis::fake_redis($ENV{TEST_NGINX_GWRL_FAKE_PORT}, sub {
        my $args = shift;
        return "+OK\r\n" unless uc($args->[0]) =~ /^EVAL/;
        my @keys = @$args[3 .. 2 + $args->[2]];
        my $n = @keys;
        # one more verdict than requests
        return "\$" . ($n + 1) . "\r\n" . ("1" x ($n + 1)) . "\r\n"
            if $mode eq 'length';
        # rejections whose details are strings, not integers
        return "*" . (1 + 5 * $n) . "\r\n\$$n\r\n" . ("0" x $n) . "\r\n"
               . ("\$1\r\n1\r\n" x (5 * $n))
            if $mode eq 'shape';
        return ":1\r\n" if $mode eq 'scalar';
        # not RESP at all
        return "%garbage\r\n" if $mode eq 'garbage';
        # the requests with a "bad" key fail, the others are admitted
        my @bad = grep { /bad/ } @keys;
        my $verdicts = join '', map { /bad/ ? 'E' : '1' } @keys;
        return "\$$n\r\n$verdicts\r\n" unless @bad;
        return "*" . (1 + @bad) . "\r\n\$$n\r\n$verdicts\r\n"
               . ("-WRONGTYPE Operation against a key holding the wrong "
                  . "kind of value\r\n") x @bad;
    }, $FakeLog);
}

GwTest::use_defaults(
    modules => ['ratelimit']
);

run_tests();

__DATA__

=== TEST 1: 300 requests of one client at once on two instances: exactly
the limit admitted, in batches of at most 64
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=5s;
    gw_ratelimit_log_level info;
    gw_ratelimit_zone $arg_c zone=b_g rate=1r/m burst=99;
    gw_ratelimit_zone $arg_c zone=b_s rate=100r/m algorithm=sliding_window;
    gw_ratelimit_zone $arg_c zone=b_f rate=100r/h algorithm=fixed_window;
--- config
    location /g {
        gw_ratelimit zone=b_g nodelay;
        empty_gif;
    }
    location /s {
        gw_ratelimit zone=b_s;
        empty_gif;
    }
    location /f {
        gw_ratelimit zone=b_f;
        empty_gif;
    }
--- init
GwRedis::flushall();
main::start_peer();
my @ports = ($ENV{TEST_NGINX_SERVER_PORT}, $ENV{TEST_NGINX_GWRL_PEER_PORT});
for my $path ('/g', '/s', '/f') {
    my $key = "burst" . time . "-$$";
    # both instances warm (connected, script loaded) before the burst
    GwRedis::http_get($_, "$path?c=warm") for @ports;
    main::redis('CONFIG', 'RESETSTAT');
    my @st = GwRedis::http_burst([map { [$ports[$_ % 2], "$path?c=$key"] }
                                  1 .. 300]);
    Test::More::is(main::count(200, @st), 100, "$path: exactly 100 admitted");
    Test::More::is(main::count(429, @st), 200, "$path: 200 rejected");
    my $calls = main::calls('evalsha');
    Test::More::cmp_ok($calls, '>=', 6,
                       "$path: batches of at most 64 ($calls calls)");
    Test::More::cmp_ok($calls, '<=', 150,
                       "$path: requests share calls ($calls calls)");
}
--- request
GET /g?c=other
--- error_code: 200



=== TEST 2: one batch with several zones and keys: each limit exact, a
request rejected by one limit is charged to none
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=5s;
    gw_ratelimit_log_level info;
    gw_ratelimit_zone $arg_c zone=per_client rate=3r/h
                      algorithm=fixed_window;
    gw_ratelimit_zone all zone=global rate=5r/h algorithm=fixed_window;
    gw_ratelimit_zone $arg_c zone=other rate=2r/m algorithm=sliding_window;
    gw_ratelimit_zone $arg_c zone=steady rate=1r/m burst=1;
--- config
    location /multi {
        gw_ratelimit zone=per_client;
        gw_ratelimit zone=global;
        empty_gif;
    }
    location /other {
        gw_ratelimit zone=other;
        empty_gif;
    }
    location /steady {
        gw_ratelimit zone=steady nodelay;
        gw_ratelimit_headers on;
        empty_gif;
    }
--- init
GwRedis::flushall();
my $port = $ENV{TEST_NGINX_SERVER_PORT};
GwRedis::http_get($port, "/other?c=warm");
main::redis('CONFIG', 'RESETSTAT');
my @reqs = ((map { my $c = $_; map { [$port, "/multi?c=$c"] } 1 .. 3 }
             qw(a b c d)),
            (map { [$port, "/other?c=e"] } 1 .. 3),
            (map { [$port, "/steady?c=f"] } 1 .. 3));
my @st = GwRedis::http_burst(\@reqs);
my @multi = @st[0 .. 11];
Test::More::is(main::count(200, @multi), 5, "global: 5 of 12 admitted");
Test::More::is(main::count(200, @st[12 .. 14]), 2, "other: 2 of 3");
Test::More::is(main::count(200, @st[15 .. 17]), 2, "gcra burst 1: 2 of 3");
Test::More::is(main::count(429, @st), 18 - 9, "the rest rejected");
for my $c (qw(a b c d)) {
    my $n = main::count(200, @multi[map { $_ + 3 * (ord($c) - 97) } 0 .. 2]);
    Test::More::cmp_ok($n, '<=', 3, "client $c: at most its 3");
}
my $charged = 0;
for my $c (qw(a b c d)) {
    $charged += main::fixed_count("gw:rl:per_client:f:{$c}") // 0;
}
Test::More::is($charged, 5, "per_client charged only for the admitted");
Test::More::is(main::fixed_count('gw:rl:global:f:{all}'), 5,
               "global charged 5");
Test::More::is(main::redis('ZCARD', 'gw:rl:other:s:{e}'), 2,
               "sliding window: 2 entries");
for my $k ('gw:rl:per_client:f:{a}', 'gw:rl:global:f:{all}',
           'gw:rl:other:s:{e}', 'gw:rl:steady:g:{f}')
{
    my $ttl = main::redis('PTTL', $k);
    Test::More::ok($ttl > 0, "$k has a ttl ($ttl ms)");
}
my $calls = main::calls('evalsha');
Test::More::cmp_ok($calls, '<', 18, "18 requests, $calls calls");
--- request
GET /multi?c=z
--- error_code: 429
--- response_body_like: "reason":"rate_limited","policy":"global"



=== TEST 3: requests that want headers and requests that do not, in one
burst: the headers are right
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=5s;
    gw_ratelimit_log_level info;
    gw_ratelimit_zone $arg_c zone=h rate=10r/h algorithm=fixed_window;
--- config
    location /with {
        gw_ratelimit zone=h;
        gw_ratelimit_headers on;
        empty_gif;
    }
    location /without {
        gw_ratelimit zone=h;
        empty_gif;
    }
--- init
GwRedis::flushall();
my $port = $ENV{TEST_NGINX_SERVER_PORT};
my @st = GwRedis::http_burst([map { [$port, "/without?c=hdr"] } 1 .. 6]);
Test::More::is(main::count(200, @st), 6, "six admitted without headers");
--- request
GET /with?c=hdr
--- error_code: 200
--- response_headers
X-RateLimit-Limit: 10
X-RateLimit-Remaining: 3
RateLimit-Policy: "h";q=10;w=3600



=== TEST 4: SCRIPT FLUSH: a whole batch is sent again with EVAL and
counted once
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=5s;
    gw_ratelimit_log_level info;
    gw_ratelimit_zone $arg_c zone=ns rate=100r/m algorithm=sliding_window;
--- config
    location /t {
        gw_ratelimit zone=ns;
        add_header X-RL $gw_ratelimit_status always;
        empty_gif;
    }
--- init
GwRedis::flushall();
my $port = $ENV{TEST_NGINX_SERVER_PORT};
GwRedis::http_get($port, "/t?c=warm");
main::redis('SCRIPT', 'FLUSH');
main::redis('CONFIG', 'RESETSTAT');
my @st = GwRedis::http_burst([map { [$port, "/t?c=ns"] } 1 .. 20]);
Test::More::is(main::count(200, @st), 20, "all admitted");
Test::More::is(main::redis('ZCARD', 'gw:rl:ns:s:{ns}'), 20, "counted once each");
Test::More::cmp_ok(main::calls('eval'), '>=', 1, "the script was sent");
--- request
GET /t?c=ns
--- error_code: 200
--- response_headers
X-RL: PASSED



=== TEST 5: clients leave while their batch is in flight: the others get
their decisions, the departed are still counted
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=5s;
    gw_ratelimit_log_level info;
    gw_ratelimit_zone $arg_c zone=ab rate=100r/m algorithm=sliding_window;
--- config
    location /t {
        gw_ratelimit zone=ab;
        empty_gif;
    }
--- init
GwRedis::flushall();
my $port = $ENV{TEST_NGINX_SERVER_PORT};
GwRedis::http_get($port, "/t?c=warm");
main::redis('CLIENT', 'PAUSE', 400);
my @st = GwRedis::http_burst([map { [$port, "/t?c=ab"] } 1 .. 8],
                             abort => {0 => 1, 3 => 1, 7 => 1},
                             abort_after => 0.1);
Test::More::is_deeply([@st[1, 2, 4, 5, 6]], [200, 200, 200, 200, 200],
                      "the clients that stayed: admitted");
Test::More::is_deeply([@st[0, 3, 7]], [0, 0, 0], "the others left");
Time::HiRes::sleep(0.5);
Test::More::is(main::redis('ZCARD', 'gw:rl:ab:s:{ab}'), 8,
               "all eight counted");
--- request
GET /t?c=after
--- error_code: 200



=== TEST 6: a batch reply with one element too many: every request of
the batch follows the fail policy
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_FAKE_PORT timeout=1s;
    gw_ratelimit_zone $arg_c zone=z rate=100r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        gw_ratelimit_fail closed;
        empty_gif;
    }
--- init
main::start_fake('length');
my $port = $ENV{TEST_NGINX_SERVER_PORT};
my @st = GwRedis::http_burst([map { [$port, "/t?c=k$_"] } 1 .. 6]);
Test::More::is(main::count(503, @st), 6, "six requests, six 503");
--- request
GET /t?c=a
--- error_code: 503
--- response_body_like: "reason":"ratelimit_unavailable"
--- error_log
unexpected script reply
--- no_error_log
[alert]
[crit]



=== TEST 7: a batch reply whose elements are strings: not believed
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_FAKE_PORT timeout=1s;
    gw_ratelimit_zone $arg_c zone=z rate=100r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        gw_ratelimit_fail closed;
        empty_gif;
    }
--- init
main::start_fake('shape');
my $port = $ENV{TEST_NGINX_SERVER_PORT};
my @st = GwRedis::http_burst([map { [$port, "/t?c=k$_"] } 1 .. 6]);
Test::More::is(main::count(503, @st), 6, "six requests, six 503");
--- request
GET /t?c=a
--- error_code: 503
--- error_log
unexpected script reply
--- no_error_log
[alert]
[crit]



=== TEST 8: a scalar where the batch's array belongs: not believed
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_FAKE_PORT timeout=1s;
    gw_ratelimit_zone $arg_c zone=z rate=100r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        gw_ratelimit_fail closed;
        empty_gif;
    }
--- init
main::start_fake('scalar');
--- request
GET /t?c=a
--- error_code: 503
--- error_log
unexpected script reply
--- no_error_log
[alert]
[crit]



=== TEST 9: an error for one request of a batch fails that request alone
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_FAKE_PORT timeout=1s;
    gw_ratelimit_zone $arg_c zone=z rate=100r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        gw_ratelimit_fail closed;
        add_header X-RL $gw_ratelimit_status always;
        empty_gif;
    }
--- init
main::start_fake('error');
my $port = $ENV{TEST_NGINX_SERVER_PORT};
my @st = GwRedis::http_burst([map { [$port, "/t?c=" . ($_ == 3 ? "bad" : "k$_")] }
                              1 .. 6]);
Test::More::is_deeply(\@st, [200, 200, 503, 200, 200, 200],
                      "only the request with the bad key fails");
open my $f, '<', $main::FakeLog or die "$main::FakeLog: $!";
my @evalsha = grep { /^EVALSHA/ } <$f>;
Test::More::cmp_ok(scalar @evalsha, '<=', 6, "batches sent: " . @evalsha);
--- request
GET /t?c=bad2
--- error_code: 503
--- response_headers
X-RL: ERROR
--- error_log eval
qr/script failed for a request: "WRONGTYPE Operation against a key/
--- no_error_log
[alert]
[crit]



=== TEST 10: a key of the wrong type in Redis fails its own request only
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=5s;
    gw_ratelimit_zone $arg_c zone=wt rate=100r/m algorithm=sliding_window;
    gw_ratelimit_zone $arg_c zone=wf rate=100r/h algorithm=fixed_window;
--- config
    location /s {
        gw_ratelimit zone=wt;
        add_header X-RL $gw_ratelimit_status always;
        empty_gif;
    }
    location /f {
        gw_ratelimit zone=wf;
        add_header X-RL $gw_ratelimit_status always;
        empty_gif;
    }
--- init
GwRedis::flushall();
main::redis('SET', 'gw:rl:wt:s:{str}', 'not a sorted set');
main::redis('SET', 'gw:rl:wf:f:{str}', 'not a number');
my $port = $ENV{TEST_NGINX_SERVER_PORT};
GwRedis::http_get($port, "/s?c=warm");
my @st = GwRedis::http_burst([[$port, "/s?c=ok1"], [$port, "/s?c=str"],
                              [$port, "/f?c=str"], [$port, "/f?c=ok2"]]);
Test::More::is_deeply(\@st, [200, 200, 200, 200], "fail open: all pass");
Test::More::is(main::redis('ZCARD', 'gw:rl:wt:s:{ok1}'), 1, "ok1 counted");
Test::More::is(main::fixed_count('gw:rl:wf:f:{ok2}'), 1, "ok2 counted");
Test::More::is(main::redis('GET', 'gw:rl:wf:f:{str}'), 'not a number',
               "the foreign string is left alone");
Test::More::is(main::redis('GET', 'gw:rl:wt:s:{str}'), 'not a sorted set',
               "the foreign key is left alone");
--- request
GET /s?c=str
--- error_code: 200
--- response_headers
X-RL: ERROR
--- error_log
script failed for a request: "WRONGTYPE
--- no_error_log
[alert]
[crit]



=== TEST 11: a peer that loads the script and then answers garbage does
not get a new connection for every batch: the next one waits, 50 ms
doubling
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_FAKE_PORT timeout=1s;
    gw_ratelimit_zone $arg_c zone=z rate=100r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        gw_ratelimit_fail closed;
        empty_gif;
    }
--- init
use Time::HiRes qw(sleep time);
main::start_fake('garbage');
my ($n, $t0) = (0, time);
while (time - $t0 < 0.6) {
    my %r = GwRedis::http_get($ENV{TEST_NGINX_SERVER_PORT}, "/t?c=k$n");
    Test::More::is($r{status}, 503, "request $n fails closed") if $n++ < 3;
    sleep 0.01;
}
open my $f, '<', $main::FakeLog or die "$main::FakeLog: $!";
my $conns = grep { /^SCRIPT/ } <$f>;
# at 0, 50, 150, 350 ms (one more for a slow nginx)
Test::More::cmp_ok($conns, '<=', 5, "$conns connections for $n requests");
Test::More::cmp_ok($conns, '>=', 3, "connected again after a wait");
--- request
GET /t?c=last
--- error_code: 503
--- error_log
invalid reply: Protocol error
--- no_error_log
[alert]
[crit]



=== TEST 12: a peer that loads the script and then answers with replies
of the wrong shape: the connection is dropped (they may answer other
commands), and the next one waits
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_FAKE_PORT timeout=1s;
    gw_ratelimit_zone $arg_c zone=z rate=100r/m;
--- config
    location /t {
        gw_ratelimit zone=z;
        gw_ratelimit_fail closed;
        empty_gif;
    }
--- init
use Time::HiRes qw(sleep time);
main::start_fake('scalar');
my ($n, $t0) = (0, time);
while (time - $t0 < 0.6) {
    my %r = GwRedis::http_get($ENV{TEST_NGINX_SERVER_PORT}, "/t?c=k$n");
    Test::More::is($r{status}, 503, "request $n fails closed") if $n++ < 3;
    sleep 0.01;
}
open my $f, '<', $main::FakeLog or die "$main::FakeLog: $!";
my $conns = grep { /^SCRIPT/ } <$f>;
# at 0, 50, 150, 350 ms (one more for a slow nginx)
Test::More::cmp_ok($conns, '<=', 5, "$conns connections for $n requests");
Test::More::cmp_ok($conns, '>=', 3, "connected again after a wait");
--- request
GET /t?c=last
--- error_code: 503
--- error_log
unexpected script reply
--- no_error_log
[alert]
[crit]
