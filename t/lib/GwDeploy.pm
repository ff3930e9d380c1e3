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

END {
    return unless $$ == $Owner;
    stop_nginx($_) for @Prefixes;
}

1;
