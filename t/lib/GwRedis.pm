# Copyright (C) nginx-gw authors
package GwRedis;

# Helpers for the gw_ratelimit suites: a minimal RESP client, private
# redis-server processes to stop and restart, a second nginx instance, and
# a small HTTP client for the sequences that need time between requests.
# Everything started here is stopped at exit.

use strict;
use warnings;

use IO::Socket::INET;
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_REUSEADDR
              sockaddr_in inet_aton);
use IO::Select;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use File::Path qw(make_path remove_tree);

our @Children;
our @TmpDirs;      # made outside TEST_NGINX_REDIS_TMP, removed at exit
our $Owner = $$;

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
        or die "no free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# One command, one reply: scalar, array ref, or { error => "..." }.
sub command {
    my ($port, @args) = @_;
    return commands($port, \@args);
}

# Several commands on one connection (AUTH, SELECT, ...): the last reply.
sub commands {
    my ($port, @cmds) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 2)
        or die "redis on port $port: $!";
    my $reply;
    for my $args (@cmds) {
        my $req = '*' . scalar(@$args) . "\r\n";
        $req .= '$' . length($_) . "\r\n$_\r\n" for @$args;
        print $s $req;
        $reply = read_reply($s);
    }
    close $s;
    return $reply;
}

# A listener that completes TCP handshakes (the kernel does) but never
# accepts, reads or answers: a stuck server.
sub black_hole {
    my $port = shift;
    my $s = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1',
                                  LocalPort => $port, ReuseAddr => 1)
        or die "black hole on $port: $!";
    return $s;
}

# A listener whose accept queue is full: connect() never completes (the
# kernel drops the SYNs), like an unreachable host.  Keep the returned
# sockets open as long as needed.
sub syn_hole {
    my $port = shift;
    socket(my $l, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
    setsockopt($l, SOL_SOCKET, SO_REUSEADDR, 1);
    bind($l, sockaddr_in($port, inet_aton('127.0.0.1')))
        or die "bind $port: $!";
    listen($l, 0) or die "listen: $!";
    my $filler = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                       PeerPort => $port, Timeout => 2)
        or die "fill the accept queue of $port: $!";
    sleep 0.05;
    return [$l, $filler];
}

# Sends a request and closes the connection after $secs, without reading.
sub http_abort {
    my ($port, $path, $secs) = @_;
    my $s = connect_http($port);
    print $s "GET $path HTTP/1.0\r\nHost: localhost\r\n\r\n";
    sleep $secs;
    close $s;
}

# How many lines of the test nginx's error log match $re.
sub count_log {
    my $re = shift;
    my $root = $ENV{TEST_NGINX_SERVROOT} || 't/servroot';
    open my $fh, '<', "$root/logs/error.log" or return 0;
    my $n = grep { /$re/ } <$fh>;
    close $fh;
    return $n;
}

sub read_reply {
    my $s = shift;
    my $line = <$s>;
    die "redis closed the connection" unless defined $line;
    $line =~ s/\r\n$//;
    my ($t, $v) = (substr($line, 0, 1), substr($line, 1));
    return $v if $t eq '+' || $t eq ':';
    return { error => $v } if $t eq '-';
    if ($t eq '$') {
        return undef if $v < 0;
        my $buf = '';
        read($s, $buf, $v + 2) == $v + 2 or die "short bulk reply";
        return substr($buf, 0, $v);
    }
    if ($t eq '*') {
        return undef if $v < 0;
        return [ map { read_reply($s) } 1 .. $v ];
    }
    die "bad reply line: $line";
}

sub flushall {
    my $port = shift // $ENV{TEST_NGINX_REDIS_PORT};
    my $r = command($port, 'FLUSHALL');
    die "FLUSHALL failed" unless defined $r && $r eq 'OK';
}

sub wait_port {
    my ($port, $up) = @_;
    for (1 .. 100) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Timeout => 1);
        my $is_up = defined $s;
        close $s if $s;
        return 1 if $is_up == $up;
        sleep 0.05;
    }
    return 0;
}

# A private redis-server (no persistence).  Returns its pid.
sub start_redis {
    my (%o) = @_;
    my $port = $o{port} or die "start_redis: no port";
    my $dir = $ENV{TEST_NGINX_REDIS_TMP}
              ? "$ENV{TEST_NGINX_REDIS_TMP}/redis-$port"
              : "/tmp/gw-redis-$$-$port";
    push @TmpDirs, $dir unless $ENV{TEST_NGINX_REDIS_TMP};
    make_path($dir);
    my @args = ('--bind', '127.0.0.1', '--port', $port, '--save', '',
                '--appendonly', 'no', '--dir', $dir, '--daemonize', 'no',
                '--logfile', "$dir/redis.log", @{ $o{args} || [] });
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        exec 'redis-server', @args or die "exec redis-server: $!";
    }
    push @Children, $pid;
    wait_port($port, 1) or die "redis-server on $port did not start";
    if ($o{password}) {
        # wait until it answers, not just accepts
        for (1 .. 50) {
            my $r = eval { command($port, 'AUTH', $o{password}) };
            last if defined $r && !ref $r;
            sleep 0.05;
        }
    }
    return $pid;
}

# A Redis Sentinel monitoring the master on $o{master} (as $o{name},
# quorum 2, down after 1 s).  Returns its pid.
sub start_sentinel {
    my (%o) = @_;
    my $port = $o{port} or die "start_sentinel: no port";
    my $dir = $ENV{TEST_NGINX_REDIS_TMP}
              ? "$ENV{TEST_NGINX_REDIS_TMP}/sentinel-$port"
              : "/tmp/gw-sentinel-$$-$port";
    push @TmpDirs, $dir unless $ENV{TEST_NGINX_REDIS_TMP};
    make_path($dir);
    my $name = $o{name} // 'mymaster';
    open my $f, '>', "$dir/sentinel.conf" or die "$dir: $!";
    print $f "port $port\nbind 127.0.0.1\ndir $dir\n"
             . "logfile $dir/sentinel.log\n"
             . "sentinel monitor $name 127.0.0.1 $o{master} 2\n"
             . "sentinel down-after-milliseconds $name "
             . ($o{down_after} // 1000) . "\n"
             . "sentinel failover-timeout $name 10000\n"
             . "sentinel parallel-syncs $name 1\n";
    close $f;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        exec 'redis-server', "$dir/sentinel.conf", '--sentinel'
            or die "exec redis-server --sentinel: $!";
    }
    push @Children, $pid;
    wait_port($port, 1) or die "sentinel on $port did not start";
    return $pid;
}

# A Redis Cluster of 3 masters and 3 replicas (redis-cli --cluster create)
# on the given 6 ports, the first three the masters.  Returns the pids.
sub start_cluster {
    my (@ports) = @_;
    my @pids = map {
        start_redis(port => $_,
                    args => ['--cluster-enabled', 'yes',
                             '--cluster-config-file', "nodes-$_.conf",
                             '--cluster-node-timeout', '1000',
                             '--cluster-replica-validity-factor', '0'])
    } @ports;
    my $nodes = join ' ', map { "127.0.0.1:$_" } @ports;
    my $cmd = "redis-cli --cluster create $nodes --cluster-replicas 1"
              . " --cluster-yes 2>&1";
    my $out = `$cmd`;
    die "redis-cli --cluster create failed:\n$out" if $?;

    # every node, not only the first: a node that has not yet heard of the
    # others answers CLUSTERDOWN, and a gateway asking it sees a topology
    # change that is only the cluster forming
    wait_cluster($_) for @ports;
    return @pids;
}

# Until CLUSTER INFO on $port says ok (and every slot is served).
sub wait_cluster {
    my ($port, $secs) = @_;
    for (1 .. ($secs // 20) * 20) {
        my $info = eval { command($port, 'CLUSTER', 'INFO') } // '';
        return 1 if $info =~ /cluster_state:ok/
                    && $info =~ /cluster_slots_ok:16384/;
        sleep 0.05;
    }
    die "cluster on $port not ok";
}

sub stop {
    my ($pid, $sig) = @_;
    return unless $pid;
    kill $sig // 'TERM', $pid;
    for (1 .. 100) {
        last if waitpid($pid, WNOHANG) == $pid;
        sleep 0.02;
    }
    if (kill 0, $pid) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    @Children = grep { $_ != $pid } @Children;
}

# A second nginx instance: its own prefix and config, daemon off, a master
# when it has several workers.  main (load_module) goes first, then the
# usual main-level lines, then config (events, http).
sub start_nginx {
    my (%o) = @_;
    my $dir = $o{prefix} or die "start_nginx: no prefix";
    remove_tree($dir);
    make_path("$dir/conf", "$dir/logs", "$dir/html");
    open my $fh, '>', "$dir/conf/nginx.conf" or die "$dir: $!";
    my $workers = $o{workers} || 1;
    my $master = ($workers > 1 || $o{master}) ? 'on' : 'off';
    print $fh $o{main} // '', "\n",
              "daemon off;\nmaster_process $master;\n",
              "worker_processes $workers;\n",
              "pid $dir/logs/nginx.pid;\n",
              "error_log $dir/logs/error.log info;\n",
              $o{config};
    close $fh;
    my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDERR, '>>', "$dir/logs/stderr.log";
        exec $bin, '-p', "$dir/", '-c', "$dir/conf/nginx.conf"
            or die "exec $bin: $!";
    }
    push @Children, $pid;
    wait_port($o{port}, 1) or die "second nginx did not listen on $o{port}";
    return $pid;
}

# The second gateway of a suite's "two instances" tests: a 2-worker nginx
# with gw_ratelimit on TEST_NGINX_GWRL_PEER_PORT, the suite's http block
# and locations (TEST_NGINX_* in the http block replaced).  Returns its pid.
sub start_peer {
    my ($http, $locations) = @_;
    my $port = $ENV{TEST_NGINX_GWRL_PEER_PORT};
    my $root = ($ENV{TEST_NGINX_SERVROOT} || 't/servroot') . '-peer';
    $http =~ s/\$(TEST_NGINX_\w+)/$ENV{$1}/g;
    return start_nginx(
        prefix => $root,
        port => $port,
        workers => 2,
        main => "load_module $ENV{TEST_NGINX_BUILD_DIR}/"
                . "ngx_http_gw_ratelimit_module.so;",
        config => "events { worker_connections 1024; }\n"
                  . "http {\n    access_log off;\n$http\n"
                  . "    server {\n        listen 127.0.0.1:$port;\n"
                  . "$locations    }\n}\n");
}

# A connection to a test nginx, which may still be starting (under
# valgrind the test server listens late).
sub connect_http {
    my $port = shift;
    for (1 .. 200) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Timeout => 5);
        return $s if $s;
        die "connect to $port: $!" unless $!{ECONNREFUSED};
        sleep 0.05;
    }
    die "connect to $port: nothing listens";
}

# GET over a fresh connection.  Returns a hash: status, headers (lower
# case names), body, secs.
sub http_get {
    my ($port, $path, %h) = @_;
    my $t0 = time;
    my $s = connect_http($port);
    $t0 = time;
    my $req = "GET $path HTTP/1.0\r\nHost: localhost\r\n";
    $req .= "$_: $h{$_}\r\n" for sort keys %h;
    print $s "$req\r\n";
    my $resp = '';
    my $sel = IO::Select->new($s);
    while ($sel->can_read(5)) {
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $resp .= $buf;
    }
    close $s;
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    my ($status) = ($head // '') =~ m{^HTTP/\S+ (\d+)};
    my %headers;
    for (split /\r\n/, $head // '') {
        $headers{lc $1} = $2 if /^([^:]+):\s*(.*)$/;
    }
    return (status => $status // 0, headers => \%headers,
            body => $body // '', secs => time - $t0);
}

# Many requests at once, each on its own connection: all connections are
# opened first, then every request is written in one quick loop, so that
# nginx reads them in the same event loop iteration (one batch, or several
# full ones).  Each request is [port, path, {headers}].  With abort =>
# {index => 1}, abort_after => secs, those connections are closed unread
# after that time.  Returns the statuses in order (0: no response).
sub http_burst {
    my ($reqs, %o) = @_;
    my @socks = map { connect_http($_->[0]) } @$reqs;
    my @out;
    for my $i (0 .. $#$reqs) {
        my ($port, $path, $h) = @{ $reqs->[$i] };
        my $req = "GET $path HTTP/1.0\r\nHost: localhost\r\n";
        $req .= "$_: $h->{$_}\r\n" for sort keys %{ $h || {} };
        push @out, "$req\r\n";
    }
    syswrite($socks[$_], $out[$_]) for 0 .. $#socks;

    my %abort = %{ $o{abort} || {} };
    if (%abort) {
        sleep($o{abort_after} // 0.05);
        for my $i (keys %abort) {
            close $socks[$i];
            $socks[$i] = undef;
        }
    }

    my @resp = ('') x @socks;
    my $sel = IO::Select->new(grep { defined } @socks);
    my %idx = map { defined $socks[$_] ? ("$socks[$_]" => $_) : () }
              0 .. $#socks;
    my $deadline = time + ($o{timeout} // 10);
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read(0.5)) {
            my $n = sysread($s, my $buf, 65536);
            if ($n) {
                $resp[$idx{"$s"}] .= $buf;
                next;
            }
            $sel->remove($s);
            close $s;
        }
    }
    return map { /^HTTP\/\S+ (\d+)/ ? $1 : 0 } @resp;
}

# Many requests on keep-alive connections, pipelined (written in groups of
# 50, read as they come; 500 per connection, below nginx's default
# keepalive_requests).  Each request is [path, {headers}] or a path.
# Returns the statuses in order (0: no response).
sub http_pipeline {
    my ($port, $reqs, %o) = @_;
    my @status;
    for (my $i = 0; $i < @$reqs; $i += 500) {
        my $last = $i + 499 < $#$reqs ? $i + 499 : $#$reqs;
        push @status, http_pipeline_one($port, [@$reqs[$i .. $last]], %o);
    }
    return @status;
}

sub http_pipeline_one {
    my ($port, $reqs, %o) = @_;
    my $s = connect_http($port);
    my @status;
    my $buf = '';
    my $sel = IO::Select->new($s);
    my $deadline = time + ($o{timeout} // 30);
    my $sent = 0;
    while (@status < @$reqs && time < $deadline) {
        if ($sent < @$reqs && $sent - @status < 50) {
            my $out = '';
            for my $i ($sent .. ($sent + 49 < $#$reqs ? $sent + 49 : $#$reqs))
            {
                my ($path, $h) = ref $reqs->[$i] ? @{ $reqs->[$i] }
                                                 : ($reqs->[$i], {});
                $out .= "GET $path HTTP/1.1\r\nHost: localhost\r\n";
                $out .= "$_: $h->{$_}\r\n" for sort keys %{ $h || {} };
                $out .= "\r\n";
                $sent++;
            }
            syswrite($s, $out) // last;
        }
        # whole responses from the front of the buffer
        while ($buf =~ /^HTTP\/1\.1 (\d+)[^\r]*\r\n(.*?)\r\n\r\n/s) {
            my ($st, $head, $hlen) = ($1, $2, $+[0]);
            my ($len) = $head =~ /^content-length:\s*(\d+)/mi;
            $len //= 0;
            last if length($buf) < $hlen + $len;
            push @status, $st;
            substr($buf, 0, $hlen + $len) = '';
        }
        last if @status == @$reqs;
        next unless $sel->can_read(1);
        my $n = sysread($s, $buf, 65536, length $buf);
        last unless $n;
    }
    close $s;
    push @status, 0 while @status < @$reqs;
    return @status;
}

# The pids of a master's worker processes.
sub workers {
    my $master = shift;
    my @pids;
    for my $d (glob "/proc/[0-9]*") {
        open my $f, '<', "$d/stat" or next;
        my $st = <$f>;
        close $f;
        next unless $st && $st =~ /^(\d+) \((.*)\) \S (\d+)/;
        push @pids, $1 if $3 == $master;
    }
    return sort { $a <=> $b } @pids;
}

# A stand-in for Redis on $port, in a child process: it answers every
# command it parses with $answer->(\@args) (a RESP string) and appends one
# line per command ("NAME nargs") to $log.  Returns its pid; stop() ends it.
sub fake_redis {
    my ($port, $answer, $log) = @_;
    my $l = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1',
                                  LocalPort => $port, ReuseAddr => 1)
        or die "fake redis on $port: $!";
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid) {
        close $l;
        push @Children, $pid;
        return $pid;
    }
    $SIG{TERM} = sub { POSIX::_exit(0) };
    while (my $c = $l->accept) {
        my $buf = '';
        while (sysread($c, $buf, 65536, length $buf)) {
            while (my ($args, $rest) = parse_command($buf)) {
                $buf = $rest;
                if (open my $f, '>>', $log) {
                    print $f uc($args->[0]), ' ', scalar(@$args), "\n";
                    close $f;
                }
                syswrite($c, $answer->($args));
            }
        }
        close $c;
    }
    POSIX::_exit(0);
}

# One command of the Redis protocol from the front of $buf: (\@args, rest),
# or () when it is not complete yet.
sub parse_command {
    my $buf = shift;
    return () unless $buf =~ /^\*(\d+)\r\n/;
    my ($n, $pos) = ($1, length($1) + 3);
    my @args;
    for (1 .. $n) {
        return () unless substr($buf, $pos) =~ /^\$(\d+)\r\n/;
        my $len = $1;
        $pos += length($len) + 3;
        return () if length($buf) < $pos + $len + 2;
        push @args, substr($buf, $pos, $len);
        $pos += $len + 2;
    }
    return (\@args, substr($buf, $pos));
}

# only in the process that started them, not in forked helpers
END {
    if ($$ == $Owner) {
        my $rc = $?;
        my @pids = @Children;
        stop($_) for @pids;
        remove_tree($_) for @TmpDirs;
        $? = $rc;
    }
}

1;
