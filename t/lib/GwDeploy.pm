# Copyright (C) nginx-gw authors
package GwDeploy;

# Helpers for the deploy/ suites (t/deploy-*.t): plain Test::More scripts
# that check the Kubernetes manifests, the Prometheus rules and the Grafana
# dashboard against a real nginx with the built modules.  Every nginx and
# backend started here is stopped at exit.

use strict;
use warnings;

use IO::Socket::INET;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep);
use Cwd qw(abs_path);
use FindBin;

our @Prefixes;
our $Owner = $$;

sub top { return abs_path("$FindBin::Bin/..") }

sub nginx_bin { $ENV{TEST_NGINX_BINARY} || $ENV{NGINX_BIN} || '/usr/sbin/nginx' }

sub build_dir { $ENV{TEST_NGINX_BUILD_DIR} || top() . '/build' }

sub load_modules {
    my @m = @_ ? @_ : qw(auth ratelimit trace metrics);
    return join '', map {
        "load_module " . build_dir() . "/ngx_http_gw_${_}_module.so;\n"
    } @m;
}

sub tmpdir {
    return tempdir("nginx-gw-deploy.XXXXXX", TMPDIR => 1, CLEANUP => 1);
}

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
        or die "no free port: $!";
    return $s->sockport;
}

sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh;
}

sub read_file {
    my $path = shift;
    open my $fh, '<', $path or die "$path: $!";
    local $/;
    return scalar <$fh>;
}

# nginx -t: (exit status, output)
sub nginx_test {
    my (%o) = @_;
    my @cmd = (nginx_bin(), '-p', "$o{prefix}/", '-c', $o{conf},
               '-e', "$o{prefix}/error.log", '-t',
               defined $o{global} ? ('-g', $o{global}) : ());
    my $out = qx{@{[ join ' ', map { quotemeta } @cmd ]} 2>&1};
    return ($? >> 8, $out);
}

# start nginx as a daemon on a prefix; pid file in the prefix
sub start_nginx {
    my (%o) = @_;
    my $p = $o{prefix};
    mkdir "$p/logs";
    my @cmd = (nginx_bin(), '-p', "$p/", '-c', $o{conf},
               '-e', "$p/logs/error.log",
               '-g', "pid $p/logs/nginx.pid;" . ($o{global} // ''));
    system(@cmd) == 0 or die "nginx did not start:\n"
        . (-e "$p/logs/error.log" ? read_file("$p/logs/error.log") : '');
    push @Prefixes, $p;
    for (1 .. 100) {
        last if -s "$p/logs/nginx.pid";
        sleep 0.05;
    }
    for my $port (@{ $o{ports} || [] }) {
        wait_port($port) or die "nginx does not listen on $port";
    }
}

sub stop_nginx {
    my $p = shift;
    my $pidfile = "$p/logs/nginx.pid";
    return unless -s $pidfile;
    chomp(my $pid = read_file($pidfile));
    kill 'QUIT', $pid;
    for (1 .. 100) {
        last unless kill 0, $pid;
        sleep 0.05;
    }
    kill 'KILL', $pid if kill 0, $pid;
}

sub wait_port {
    my $port = shift;
    for (1 .. 100) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port);
        return 1 if $s;
        sleep 0.05;
    }
    return 0;
}

# one HTTP/1.0 request: (status, head, body)
sub http {
    my ($port, $path, %h) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 5)
        or return (0, '', "connect: $!");
    my $method = delete $h{method} || 'GET';
    print $s "$method $path HTTP/1.0\r\nHost: localhost\r\n",
             (map { "$_: $h{$_}\r\n" } sort keys %h), "\r\n";
    local $/;
    my $res = <$s> // '';
    my ($head, $body) = split /\r\n\r\n/, $res, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d{3})};
    return ($status // 0, $head // '', $body // '');
}

our (@Pids, @Backends);

# redis-server on a free port, stopped at exit: (port, pid)
sub start_redis {
    my $dir = shift;
    my $port = free_port();
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        exec 'redis-server', '--bind', '127.0.0.1', '--port', $port,
             '--save', '', '--appendonly', 'no', '--dir', $dir,
             '--logfile', "$dir/redis.log";
        exit 127;
    }
    push @Pids, $pid;
    wait_port($port) or die "redis-server did not start";
    return ($port, $pid);
}

sub stop_pid {
    my $pid = shift;
    kill 'TERM', $pid;
    waitpid $pid, 0;
    @Pids = grep { $_ != $pid } @Pids;
}

# The demo of make run (examples/run-demo) on free ports: three backends
# from examples/backend.conf, a private Redis, an RS256 key with its JWKS
# and Crypt::JWT tokens, and the gateway from examples/nginx.conf with its
# addresses adapted.  The adaptation matches patterns, not lines, so that
# routes, upstreams and servers added to the example keep working: every
# upstream server name goes to a demo backend, every listen port to a free
# port.  The Redis deadline becomes redis_timeout (default 1s, as
# t/interop.t does): an exact count must not depend on a shared machine
# answering within the demo's 50 ms.  Returns { prefix, gw => port,
# metrics => port, listen => {port => local port}, redis => port,
# redis_pid, token => sub { claims } }.
sub start_demo {
    my (%o) = @_;
    my $timeout = $o{redis_timeout} // '1s';
    my $dir = tmpdir();
    chmod 0755, $dir;
    mkdir "$dir/logs";
    mkdir "$dir/cache";
    chmod 0777, "$dir/cache";

    my ($redis, $redis_pid) = start_redis($dir);

    my $backend = read_file(top() . '/examples/backend.conf');
    my @backends;
    for my $n (1 .. 3) {
        my $port = free_port();
        push @backends, $port;
        (my $c = $backend) =~ s/\@NAME\@/app$n/g;
        $c =~ s/\@PORT\@/$port/g;
        write_file("$dir/app$n.conf", $c);
        system(nginx_bin(), '-p', "$dir/", '-c', "$dir/app$n.conf",
               '-e', "$dir/logs/app$n.error.log") == 0
            or die "backend app$n did not start";
        wait_port($port) or die "backend app$n does not listen";
    }
    push @Backends, $dir;

    require Crypt::PK::RSA;
    require Crypt::JWT;
    require JSON::PP;
    my $key = Crypt::PK::RSA->new;
    $key->generate_key(256);
    my $jwk = JSON::PP::decode_json($key->export_key_jwk('public'));
    @$jwk{qw(kid alg use)} = qw(demo RS256 sig);
    write_file("$dir/jwks.json", JSON::PP::encode_json({ keys => [$jwk] }));
    my $token = sub {
        my %claims = @_;
        return Crypt::JWT::encode_jwt(payload => \%claims, alg => 'RS256',
                                      key => $key,
                                      extra_headers => { kid => 'demo' });
    };

    my $conf = read_file(top() . '/examples/nginx.conf');
    my $bd = build_dir();
    $conf =~ s{^(\s*load_module\s+)modules/}{$1$bd/}mg;
    my $i = 0;
    $conf =~ s{^(\s*server\s+)[A-Za-z][\w.-]*:\d+}
              {$1 . "127.0.0.1:" . $backends[$i++ % 3]}mge;
    $conf =~ s{(gw_ratelimit_redis\s+)[\w.-]+:\d+}{${1}127.0.0.1:$redis}g;
    # no span collector here: the demo's exporter is left out
    $conf =~ s{^\s*gw_trace_otlp\s[^;]*;\n}{}mg;
    $conf =~ s{(gw_ratelimit_redis\s[^;]*\btimeout=)\w+}{$1$timeout}g
        if $timeout ne 'demo';
    my %listen;
    $conf =~ s{^(\s*listen\s+)(?:[\d.]+:)?(\d+)\b}
              {$1 . "127.0.0.1:" . ($listen{$2} //= free_port())}mge;
    write_file("$dir/gateway.conf", $conf);

    start_nginx(prefix => $dir, conf => "$dir/gateway.conf",
                global => 'error_log logs/error.log notice;',
                ports => [values %listen]);

    return { prefix => $dir, listen => \%listen, gw => $listen{8080},
             metrics => $listen{8081}, redis => $redis,
             redis_pid => $redis_pid, token => $token };
}

END {
    return unless $$ == $Owner;
    stop_nginx($_) for @Prefixes;
    for my $dir (@Backends) {
        for my $pidfile (glob "$dir/logs/app*.pid") {
            chomp(my $pid = read_file($pidfile));
            kill 'QUIT', $pid;
        }
    }
    kill 'TERM', @Pids if @Pids;
    waitpid $_, 0 for @Pids;
}

1;
