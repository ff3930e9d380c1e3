# Copyright (C) nginx-gw authors
# gw_ratelimit behaves as limit_req where its users rely on it: without
# "nodelay" the requests beyond the rate (up to the burst) are delayed at
# the rate, by a timer (the worker goes on serving others), "delay=N" lets
# N of them through at once, "nodelay" none waits; the rejection line is
# limit_req's, which Debian's fail2ban filter nginx-limit-req matches (run
# with fail2ban-regex on the error log the suite produced).

use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwRedis;
use POSIX ();
use Time::HiRes qw(time sleep);

repeat_each(1);
no_shuffle();

# valgrind makes everything slower; timing bounds scale with it, and zone
# g's rate is 2r/s instead of 10r/s (a delay step of $Tick seconds)
our $Slow = $ENV{TEST_NGINX_USE_VALGRIND} ? 10 : 1;
our $Tick = $Slow > 1 ? 0.5 : 0.1;
$ENV{TEST_NGINX_GWRL_G_RATE} = $Slow > 1 ? '2r/s' : '10r/s';

# the excess logged for $n requests over the rate sent together: $n less
# what the time between them refunds (under valgrind, any value)
sub ex {
    my ($n) = @_;
    return qr/\d+\.\d{3}/ if $Slow > 1;
    return qr/(?:@{[$n - 1]}\.9\d\d|$n\.000)/;
}

# $n requests at once (each on its own connection, a process each), each
# with its client id; returns [status, seconds] per request, in order
sub together {
    my ($path, @ids) = @_;
    my @pipes;
    # under valgrind a fresh worker's first decision (a connection to
    # Redis, the script loaded, code translated) would spread the others
    GwRedis::http_get($ENV{TEST_NGINX_SERVER_PORT}, $path,
                      'X-Client-ID' => 'warm-up') if $Slow > 1;
    my $t0 = time + 0.2;
    for my $id (@ids) {
        pipe(my $r, my $w) or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            close $r;
            my $c = GwRedis::connect_http($ENV{TEST_NGINX_SERVER_PORT});
            sleep($t0 - time) if $t0 > time;
            my $start = time;
            print $c "GET $path HTTP/1.0\r\nHost: localhost\r\n"
                     . "X-Client-ID: $id\r\n\r\n";
            my $resp = '';
            while (sysread($c, my $buf, 65536)) { $resp .= $buf }
            my ($st) = $resp =~ /^HTTP\/\S+ (\d+)/;
            printf $w "%d %.3f\n", $st // 0, time - $start;
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        push @pipes, [$pid, $r];
    }
    my @out;
    for (@pipes) {
        my ($pid, $r) = @$_;
        my ($st, $secs) = split ' ', scalar(<$r>) // '0 0';
        push @out, [$st, $secs];
        waitpid $pid, 0;
    }
    return @out;
}

sub ms { join ' ', map { sprintf "%d:%dms", $_->[0], $_->[1] * 1000 } @_ }

# fail2ban-regex (Debian's fail2ban) with its nginx-limit-req filter on the
# error log so far: the number of lines that match (a ban counts those)
sub fail2ban {
    my $log = ($ENV{TEST_NGINX_SERVROOT} || 't/servroot') . '/logs/error.log';
    my $filter = '/etc/fail2ban/filter.d/nginx-limit-req.conf';
    my $out = `fail2ban-regex --print-all-matched '$log' '$filter' 2>&1`;
    my ($matched) = $out =~ /^Lines: \d+ lines, \d+ ignored, (\d+) matched/m;
    Test::More::diag($out) unless defined $matched;
    my $line = qr/limiting requests, excess: [\d.]+ by zone "\w+", client: /;
    Test::More::like($out, qr/${line}127\.0\.0\.1,/,
                     "fail2ban-regex: the matched lines") if $matched;
    return $matched // -1;
}

GwTest::use_defaults(
    modules => ['ratelimit'],
    init => 'GwRedis::flushall();',
    http_config => <<'END',
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_zone $http_x_client_id zone=g rate=$TEST_NGINX_GWRL_G_RATE
                      burst=3;
    gw_ratelimit_zone $http_x_client_id zone=slow rate=1r/s burst=2;
    gw_ratelimit_zone $http_x_client_id zone=f rate=10r/s burst=2
                      algorithm=fixed_window;
END
);

run_tests();

__DATA__

=== TEST 1: without nodelay, the excess waits at the rate, beyond the burst
429
--- config
    location /t {
        gw_ratelimit zone=g;
        add_header X-RL $gw_ratelimit_status always;
        empty_gif;
    }
--- init
GwRedis::flushall();
my @r = main::together('/t', ('a') x 5);
my @st = sort { $a <=> $b } map { $_->[0] } @r;
Test::More::is("@st", "200 200 200 200 429",
               "burst 3: four admitted, one rejected");
# the admitted ones, by how long they took: 0, 100, 200, 300 ms
my @t = sort { $a <=> $b } map { $_->[1] } grep { $_->[0] == 200 } @r;
Test::More::ok($t[0] < 0.09 * $main::Slow, "first at once: " . main::ms(@r));
for my $k (1 .. 3) {
    Test::More::ok($t[$k] >= $main::Tick * $k - 0.02
                   && $t[$k] < $main::Tick * $k + 0.09 * $main::Slow,
                   "excess $k waits ${k}00 ms: $t[$k]");
}
my ($rej) = grep { $_->[0] == 429 } @r;
Test::More::ok($rej->[1] < 0.09 * $main::Slow, "the rejection at once");
--- request
GET /t
--- more_headers
X-Client-ID: b
--- error_code: 200
--- response_headers
X-RL: PASSED
--- error_log eval
[qr/\[warn\] .*delaying request, excess: ${\ main::ex(1)}, by zone "g"/,
 qr/\[warn\] .*delaying request, excess: ${\ main::ex(3)}, by zone "g"/,
 qr/\[error\] .*limiting requests, excess: ${\ main::ex(4)} by zone "g"/]



=== TEST 2: delay=2: two of the excess go at once, the third waits
--- config
    location /t {
        gw_ratelimit zone=g delay=2;
        add_header X-RL $gw_ratelimit_status always;
        empty_gif;
    }
--- init
GwRedis::flushall();
my @r = main::together('/t', ('a') x 4);
my @t = sort { $a <=> $b } map { $_->[1] } grep { $_->[0] == 200 } @r;
Test::More::is(scalar @t, 4, "four admitted: " . main::ms(@r));
Test::More::ok($t[2] < 0.09 * $main::Slow, "three at once");
Test::More::ok($t[3] >= $main::Tick - 0.02
               && $t[3] < $main::Tick + 0.09 * $main::Slow,
               "the fourth (excess 3) waits 100 ms: $t[3]");
--- request
GET /t
--- more_headers
X-Client-ID: b
--- error_code: 200
--- error_log eval
qr/delaying request, excess: ${\ main::ex(3)}, by zone "g"/
--- no_error_log eval
[($main::Slow > 1 ? () : qr/excess: ${\ main::ex(2)}, by zone/), "[error]"]



=== TEST 3: nodelay: the whole burst at once
--- config
    location /t {
        gw_ratelimit zone=g nodelay;
        empty_gif;
    }
--- init
GwRedis::flushall();
my @r = main::together('/t', ('a') x 5);
my @st = sort { $a <=> $b } map { $_->[0] } @r;
Test::More::is("@st", "200 200 200 200 429", "four admitted, one rejected");
my @t = sort { $a <=> $b } map { $_->[1] } @r;
Test::More::ok($t[-1] < 0.09 * $main::Slow, "none waits: " . main::ms(@r));
--- request
GET /t
--- more_headers
X-Client-ID: b
--- error_code: 200
--- error_log eval
qr/\[error\] .*limiting requests, excess: ${\ main::ex(4)} by zone "g"/
--- no_error_log
delaying request



=== TEST 4: a delay is a timer: the worker serves others meanwhile
--- config
    location /slow {
        gw_ratelimit zone=slow;
        empty_gif;
    }
    location /other {
        empty_gif;
    }
--- init
GwRedis::flushall();
my $port = $ENV{TEST_NGINX_SERVER_PORT};
my %r = GwRedis::http_get($port, '/slow', 'X-Client-ID' => 'a');
Test::More::is($r{status}, 200, "first at once");
my $pid = fork // die;
if ($pid == 0) {
    # excess 2 at 1r/s: two seconds
    GwRedis::http_get($port, '/slow', 'X-Client-ID' => 'a');
    GwRedis::http_get($port, '/slow', 'X-Client-ID' => 'a');
    POSIX::_exit(0);
}
sleep 0.3;
for my $i (1 .. 3) {
    %r = GwRedis::http_get($port, '/other');
    Test::More::ok($r{status} == 200 && $r{secs} < 0.2 * $main::Slow,
                   "another request meanwhile: $r{status} in $r{secs} s");
    %r = GwRedis::http_get($port, '/slow', 'X-Client-ID' => "c$i");
    Test::More::ok($r{status} == 200 && $r{secs} < 0.2 * $main::Slow,
                   "another client meanwhile: $r{status} in $r{secs} s");
}
waitpid $pid, 0;
--- request
GET /other
--- error_code: 200
--- error_log eval
qr/delaying request, excess: ${\ main::ex(1)}, by zone "slow"/



=== TEST 5: a client that leaves while delayed: nothing breaks
--- config
    location /slow {
        gw_ratelimit zone=slow;
        empty_gif;
    }
--- init
GwRedis::flushall();
my $port = $ENV{TEST_NGINX_SERVER_PORT};
GwRedis::http_get($port, '/slow', 'X-Client-ID' => 'a');
my $c = GwRedis::connect_http($port);
print $c "GET /slow HTTP/1.0\r\nHost: localhost\r\nX-Client-ID: a\r\n\r\n";
sleep 0.2;
close $c;
sleep 0.2;
--- request
GET /slow
--- more_headers
X-Client-ID: b
--- error_code: 200
--- error_log eval
qr/delaying request, excess: ${\ main::ex(1)}, by zone "slow"/
--- no_error_log
[error]
[alert]
[crit]



=== TEST 6: a fixed window: the requests beyond the rate wait at the rate
(the window counts them when they are admitted)
--- config
    location /f {
        gw_ratelimit zone=f;
        empty_gif;
    }
--- init
GwRedis::flushall();
# away from the end of a one-second window
my $t = GwRedis::command($ENV{TEST_NGINX_REDIS_PORT}, 'TIME');
my $frac = $t->[1] / 1e6;
sleep(1.05 - $frac) if $frac > 0.5;
my @r = main::together('/f', ('a') x 13);
my @st = sort { $a <=> $b } map { $_->[0] } @r;
Test::More::is(scalar(grep { $_ == 200 } @st), 12,
               "rate 10 + burst 2 admitted: " . main::ms(@r));
my @t = sort { $a <=> $b } map { $_->[1] } grep { $_->[0] == 200 } @r;
Test::More::ok($t[9] < 0.09 * $main::Slow, "ten at once");
Test::More::ok($t[10] >= 0.08 && $t[10] < 0.1 + 0.09 * $main::Slow,
               "the eleventh waits 100 ms: $t[10]");
Test::More::ok($t[11] >= 0.18 && $t[11] < 0.2 + 0.09 * $main::Slow,
               "the twelfth waits 200 ms: $t[11]");
--- request
GET /f
--- more_headers
X-Client-ID: b
--- error_code: 200
--- error_log
delaying request, excess: 2.000, by zone "f"



=== TEST 7: dry run: would be delayed, is not; $gw_ratelimit_status says so
--- config
    location /t {
        gw_ratelimit zone=g;
        gw_ratelimit_dry_run on;
        add_header X-RL $gw_ratelimit_status always;
        empty_gif;
    }
--- pipelined_requests eval
["GET /t", "GET /t"]
--- more_headers
X-Client-ID: a
--- error_code eval
[200, 200]
--- response_headers eval
["X-RL: PASSED", "X-RL: DELAYED_DRY_RUN"]



=== TEST 8: $gw_ratelimit_status DELAYED
--- config
    location /t {
        gw_ratelimit zone=g;
        add_header X-RL $gw_ratelimit_status always;
        empty_gif;
    }
--- pipelined_requests eval
["GET /t", "GET /t", "GET /t"]
--- more_headers
X-Client-ID: a
--- error_code eval
[200, 200, 200]
--- response_headers eval
["X-RL: PASSED", "X-RL: DELAYED", "X-RL: DELAYED"]



=== TEST 9: fail2ban's nginx-limit-req filter finds every rejection, no
dry run, no delay
--- config
    location /t {
        gw_ratelimit zone=slow nodelay;
        empty_gif;
    }
    location /dry {
        gw_ratelimit zone=slow nodelay;
        gw_ratelimit_dry_run on;
        empty_gif;
    }
    location /g {
        gw_ratelimit zone=g;
        empty_gif;
    }
--- init
GwRedis::flushall();
my @reqs = ((map { ['/t', { 'X-Client-ID' => 'a' }] } 1 .. 5),
            (map { ['/dry', { 'X-Client-ID' => 'b' }] } 1 .. 4),
            (map { ['/g', { 'X-Client-ID' => 'c' }] } 1 .. 2));
my @st = GwRedis::http_pipeline($ENV{TEST_NGINX_SERVER_PORT}, \@reqs);
Test::More::is("@st", "200 200 200 429 429 200 200 200 200 200 200",
               "two rejections, one dry-run rejection, one delay");
Test::More::is(main::fail2ban(), 2, "fail2ban-regex: two matches");
--- request
GET /t
--- more_headers
X-Client-ID: a
--- error_code: 429
--- error_log eval
[qr/limiting requests, dry run, excess: ${\ main::ex(3)} by zone "slow"/,
 qr/delaying request, excess: ${\ main::ex(1)}, by zone "g"/]



=== TEST 10: fail2ban's filter finds the rejections of the local fallback
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    gw_ratelimit_zone $http_x_client_id zone=z rate=1r/m;
    gw_ratelimit_fail local;
--- config
    location /t {
        gw_ratelimit zone=z;
        add_header X-RL $gw_ratelimit_status always;
        empty_gif;
    }
--- init
my @st = GwRedis::http_pipeline($ENV{TEST_NGINX_SERVER_PORT},
                                [map { ['/t', { 'X-Client-ID' => 'a' }] }
                                 1 .. 4]);
Test::More::is("@st", "200 429 429 429", "the local count rejects");
Test::More::is(main::fail2ban(), 3, "fail2ban-regex: three matches");
--- request
GET /t
--- more_headers
X-Client-ID: a
--- error_code: 429
--- response_headers
X-RL: ERROR
--- error_log
connect failed
