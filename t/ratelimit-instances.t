# Copyright (C) nginx-gw authors
# Two nginx instances (the test server and a second nginx started here, each
# with two worker processes) share one Redis: the sum admitted by both
# equals the limit, one request after another and under concurrency.

use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwRedis;

repeat_each(2);
no_shuffle();
master_on();
workers(2);

$ENV{TEST_NGINX_GWRL_PEER_PORT} = GwRedis::free_port();

our $Peer;

# The second instance: same zones, same Redis, its own process tree.
sub start_peer {
    GwRedis::stop($Peer) if $Peer;

    my $port = $ENV{TEST_NGINX_GWRL_PEER_PORT};
    my $redis = $ENV{TEST_NGINX_REDIS_PORT};
    my $root = ($ENV{TEST_NGINX_SERVROOT} || 't/servroot') . '-peer';

    $Peer = GwRedis::start_nginx(
        prefix => $root,
        port => $port,
        workers => 2,
        main => "load_module $ENV{TEST_NGINX_BUILD_DIR}/"
                . "ngx_http_gw_ratelimit_module.so;",
        config => <<"END");
events {
    worker_connections 1024;
}

http {
    access_log off;
    gw_ratelimit_redis 127.0.0.1:$redis timeout=1s;
    gw_ratelimit_log_level info;

    gw_ratelimit_zone \$http_x_client_id zone=shared rate=6r/m
                      algorithm=sliding_window;
    gw_ratelimit_zone \$http_x_client_id zone=conc_s rate=50r/m
                      algorithm=sliding_window;
    gw_ratelimit_zone \$http_x_client_id zone=conc_g rate=1r/m burst=29;
    gw_ratelimit_zone \$http_x_client_id zone=conc_f rate=40r/h
                      algorithm=fixed_window;

    server {
        listen 127.0.0.1:$port;

        location /limited {
            gw_ratelimit zone=shared;
            add_header X-Instance B always;
            proxy_pass http://127.0.0.1:$port/backend;
        }

        location /conc_s {
            gw_ratelimit zone=conc_s;
            proxy_pass http://127.0.0.1:$port/backend;
        }

        location /conc_g {
            gw_ratelimit zone=conc_g nodelay;
            proxy_pass http://127.0.0.1:$port/backend;
        }

        location /conc_f {
            gw_ratelimit zone=conc_f;
            proxy_pass http://127.0.0.1:$port/backend;
        }

        location /backend {
            return 200 "ok\\n";
        }
    }
}
END
}

# $procs clients at once, each sending $n requests alternately to both
# instances with the same key; returns how many were admitted (200) and
# how many were rejected (429).
sub blast {
    my ($path, $key, $procs, $n) = @_;
    my @ports = ($ENV{TEST_NGINX_SERVER_PORT}, $ENV{TEST_NGINX_GWRL_PEER_PORT});
    my @pipes;

    for my $p (1 .. $procs) {
        pipe(my $r, my $w) or die "pipe: $!";
        my $pid = fork;
        die "fork: $!" unless defined $pid;

        if ($pid == 0) {
            close $r;
            my ($ok, $rej, $other) = (0, 0, 0);
            for my $i (1 .. $n) {
                my %res = GwRedis::http_get($ports[($p + $i) % 2], $path,
                                            'X-Client-ID' => $key);
                if ($res{status} == 200) { $ok++ }
                elsif ($res{status} == 429) { $rej++ }
                else { $other++ }
            }
            print $w "$ok $rej $other\n";
            close $w;
            POSIX::_exit(0);
        }

        close $w;
        push @pipes, [$pid, $r];
    }

    my ($ok, $rej, $other) = (0, 0, 0);
    for (@pipes) {
        my ($pid, $r) = @$_;
        my ($o, $j, $x) = split ' ', scalar <$r>;
        $ok += $o; $rej += $j; $other += $x;
        waitpid $pid, 0;
    }

    return ($ok, $rej, $other);
}

GwTest::use_defaults(
    modules => ['ratelimit']
);

run_tests();

__DATA__

=== TEST 1: alternating between the instances: exactly the limit in total
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_log_level info;
    gw_ratelimit_zone $http_x_client_id zone=shared rate=6r/m
                      algorithm=sliding_window;
--- config
    # one key per client connection, the same on both instances
    location /a {
        proxy_set_header X-Client-ID "$arg_c-$connection";
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/limited;
    }
    location /b {
        proxy_set_header X-Client-ID "$arg_c-$connection";
        proxy_pass http://127.0.0.1:$TEST_NGINX_GWRL_PEER_PORT/limited;
    }
    location /limited {
        gw_ratelimit zone=shared;
        add_header X-Instance A always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
GwRedis::flushall();
main::start_peer();
--- pipelined_requests eval
["GET /a?c=x", "GET /b?c=x", "GET /a?c=x", "GET /b?c=x", "GET /a?c=x",
 "GET /b?c=x", "GET /a?c=x", "GET /b?c=x", "GET /a?c=x", "GET /b?c=x"]
--- error_code eval
[200, 200, 200, 200, 200, 200, 429, 429, 429, 429]
--- response_headers eval
["X-Instance: A", "X-Instance: B", "X-Instance: A", "X-Instance: B",
 "X-Instance: A", "X-Instance: B", "X-Instance: A", "X-Instance: B",
 "X-Instance: A", "X-Instance: B"]



=== TEST 2: concurrent clients on both instances, four workers in all
--- http_config
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    gw_ratelimit_log_level info;
    gw_ratelimit_zone $http_x_client_id zone=conc_s rate=50r/m
                      algorithm=sliding_window;
    gw_ratelimit_zone $http_x_client_id zone=conc_g rate=1r/m burst=29;
    gw_ratelimit_zone $http_x_client_id zone=conc_f rate=40r/h
                      algorithm=fixed_window;
--- config
    location /conc_s {
        gw_ratelimit zone=conc_s;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /conc_g {
        gw_ratelimit zone=conc_g nodelay;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /conc_f {
        gw_ratelimit zone=conc_f;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location /backend {
        return 200 "ok\n";
    }
--- init
GwRedis::flushall();
main::start_peer();
my $key = "conc-" . time . "-$$";
for my $case (['/conc_s', 50, 'sliding_window 50r/m'],
              ['/conc_g', 30, 'gcra 1r/m burst=29'],
              ['/conc_f', 40, 'fixed_window 40r/h'])
{
    my ($path, $limit, $what) = @$case;
    my ($ok, $rej, $other) = main::blast($path, "$key$path", 8, 25);
    Test::More::is($ok, $limit, "$what: the two instances admit $limit");
    Test::More::is($rej, 200 - $limit, "$what: the rest is rejected");
    Test::More::is($other, 0, "$what: no other status");
}
--- request
GET /backend
--- response_body
ok
