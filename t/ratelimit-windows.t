# Copyright (C) nginx-gw authors
# How each algorithm refills over time: gcra one request per emission
# interval, a fixed window all at once at the window's end (by Redis
# time), a sliding window one request at a time as each admitted request
# turns one period old.  The sequences need real time between requests, so
# they run in --- init (perl, against the running test server), timed
# against Redis's clock.

use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwRedis;

repeat_each(1);
no_shuffle();

# Under valgrind nginx is far too slow for these timings: the requests
# still run (valgrind checks their code paths), the timed outcomes are not
# asserted.
our $Timed = !$ENV{TEST_NGINX_USE_VALGRIND};

sub is_timed {
    my ($got, $want, $name) = @_;
    return Test::More::is($got, $want, $name) if $Timed;
    return Test::More::pass("$name (not timed under valgrind)");
}

sub get {
    my ($path) = @_;
    my %r = GwRedis::http_get($ENV{TEST_NGINX_SERVER_PORT}, $path);
    return $r{status};
}

# Redis time in seconds (float): the windows follow Redis's clock
sub redis_time {
    my $t = GwRedis::command($ENV{TEST_NGINX_REDIS_PORT}, 'TIME');
    return $t->[0] + $t->[1] / 1e6;
}

# sleep until the fraction $at of the current (or next) Redis second
sub at_fraction {
    my ($at) = @_;
    my $now = redis_time();
    my $frac = $now - int($now);
    my $wait = $at - $frac;
    $wait += 1 if $wait < 0.05;
    Time::HiRes::sleep($wait);
}

our $Http = <<"END";
    gw_ratelimit_redis 127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT} timeout=1s;
    gw_ratelimit_log_level info;
    gw_ratelimit_zone \$arg_c zone=gcra rate=10r/s burst=1;
    gw_ratelimit_zone \$arg_c zone=fixed rate=3r/s algorithm=fixed_window;
    gw_ratelimit_zone \$arg_c zone=sliding rate=3r/s
                      algorithm=sliding_window;
END

our $Config = <<"END";
    location /gcra {
        gw_ratelimit zone=gcra nodelay;
        proxy_pass http://127.0.0.1:\$server_port/backend;
    }
    location /fixed {
        gw_ratelimit zone=fixed;
        proxy_pass http://127.0.0.1:\$server_port/backend;
    }
    location /sliding {
        gw_ratelimit zone=sliding;
        proxy_pass http://127.0.0.1:\$server_port/backend;
    }
    location /backend {
        return 200 "ok\\n";
    }
END

GwTest::use_defaults(
    modules => ['ratelimit'],
    http_config => $Http,
    config => $Config
);

run_tests();

__DATA__

=== TEST 1: gcra refills one request per emission interval (100 ms)
--- init
use Time::HiRes qw(sleep);
GwRedis::flushall();
my $c = "g" . time;
main::is_timed(main::get("/gcra?c=$c"), 200, "gcra: first");
main::is_timed(main::get("/gcra?c=$c"), 200, "gcra: burst");
main::is_timed(main::get("/gcra?c=$c"), 429, "gcra: over");
sleep 0.13;
main::is_timed(main::get("/gcra?c=$c"), 200, "gcra: one refilled");
main::is_timed(main::get("/gcra?c=$c"), 429, "gcra: only one");
sleep 0.25;
main::is_timed(main::get("/gcra?c=$c"), 200, "gcra: refilled again");
main::is_timed(main::get("/gcra?c=$c"), 200, "gcra: up to the burst");
main::is_timed(main::get("/gcra?c=$c"), 429, "gcra: no more");
--- request
GET /gcra
--- error_code: 200



=== TEST 2: a fixed window empties at its end, whatever happened inside it
--- init
use Time::HiRes qw(sleep);
GwRedis::flushall();
my $c = "f" . time;
main::at_fraction(0.55);
main::is_timed(main::get("/fixed?c=$c"), 200, "fixed: 1 of 3");
main::is_timed(main::get("/fixed?c=$c"), 200, "fixed: 2 of 3");
main::is_timed(main::get("/fixed?c=$c"), 200, "fixed: 3 of 3");
main::is_timed(main::get("/fixed?c=$c"), 429, "fixed: the 4th waits");
main::at_fraction(0.15);
# a new second: all three back at once, though the last ones are recent
main::is_timed(main::get("/fixed?c=$c"), 200, "fixed: new window 1");
main::is_timed(main::get("/fixed?c=$c"), 200, "fixed: new window 2");
main::is_timed(main::get("/fixed?c=$c"), 200, "fixed: new window 3");
main::is_timed(main::get("/fixed?c=$c"), 429, "fixed: new window full");
--- request
GET /fixed
--- error_code: 200



=== TEST 3: a sliding window: at most 3 in any second, never 2N at a seam
--- init
use Time::HiRes qw(sleep time);
GwRedis::flushall();
my $c = "s" . time;
main::at_fraction(0.55);
my $t0 = time;
main::is_timed(main::get("/sliding?c=$c"), 200, "sliding: 1 of 3");
main::is_timed(main::get("/sliding?c=$c"), 200, "sliding: 2 of 3");
main::is_timed(main::get("/sliding?c=$c"), 200, "sliding: 3 of 3");
main::is_timed(main::get("/sliding?c=$c"), 429, "sliding: the 4th waits");
main::at_fraction(0.15);
# the second changed, but the three requests are younger than one second:
# a fixed window would admit three more here
main::is_timed(main::get("/sliding?c=$c"), 429,
               "sliding: still full after the seam");
sleep(1.05 - (time - $t0)) if time - $t0 < 1.05;
main::is_timed(main::get("/sliding?c=$c"), 200,
               "sliding: one second after, they have expired");
--- request
GET /sliding
--- error_code: 200



=== TEST 4: Retry-After and reset follow the algorithm
--- config
    location /gcra {
        gw_ratelimit zone=gcra nodelay;
        gw_ratelimit_headers on;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /sliding {
        gw_ratelimit zone=sliding;
        gw_ratelimit_headers on;
        proxy_pass http://127.0.0.1:$server_port/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
use Time::HiRes qw(sleep);
GwRedis::flushall();
my $port = $ENV{TEST_NGINX_SERVER_PORT};
my $c = "r" . time;
my %r;
%r = GwRedis::http_get($port, "/sliding?c=$c") for 1 .. 3;
%r = GwRedis::http_get($port, "/sliding?c=$c");
main::is_timed($r{status}, 429, "sliding: rejected");
main::is_timed($r{headers}{'retry-after'}, 1, "sliding: Retry-After 1");
main::is_timed($r{headers}{'ratelimit'}, qq{"sliding";r=0;t=1},
               "sliding: RateLimit r=0 t=1");
sleep 1.05;
%r = GwRedis::http_get($port, "/sliding?c=$c");
main::is_timed($r{status}, 200, "sliding: admitted again");
main::is_timed($r{headers}{'x-ratelimit-remaining'}, 2,
               "sliding: all three expired, two left after this one");
--- request
GET /backend
--- error_code: 200
