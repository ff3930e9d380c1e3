# Copyright (C) nginx-gw authors
package Faults;

# The shared part of the fault scenarios (faults/*): private nginx and Redis
# processes on loopback, wrk load with exact per-status counts, /proc
# figures, error and access log readers, and the judge that turns figures
# and bounds into checks and one PASS/FAIL line.
#
# A scenario script:
#
#   my $f = Faults->new('redis-outage', 'kill/open');
#   my $fig = $f->figures_or(sub { ... measure, return a hash ... });
#   $f->check('latency', $fig->{max_ms} <= $f->bound(max_ms => 70),
#             "max $fig->{max_ms} ms");
#   exit $f->finish($fig, ...);
#
# Environment:
#   FAULTS_SCALE=tiny        short durations and small loads (make test's
#                            check of each scenario's logic)
#   FAULTS_OUT=dir           where processes keep their files
#                            (default faults/out)
#   FAULTS_FIGURES=file      also write the figures and checks as JSON
#   FAULTS_BOUND_<NAME>=v    override a bound (the names are printed)
#   FAULTS_JUDGE=file        do not measure: judge the figures in file (as
#                            written by FAULTS_FIGURES) against the bounds
#
# Everything started here is stopped when the script exits, whatever
# happens (an nginx master gets QUIT, then KILL; GwRedis stops its Redis).

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

our $Top;

BEGIN {
    $Top = abs_path(dirname(abs_path(__FILE__)) . '/../..');
}

use lib "$Top/t/lib";
use GwRedis;

our $Tiny = ($ENV{FAULTS_SCALE} // '') eq 'tiny';
our $Build = $ENV{TEST_NGINX_BUILD_DIR} // $ENV{BUILD} // "$Top/build";
our $Nginx = $ENV{TEST_NGINX_BINARY} // $ENV{NGINX_BIN} // '/usr/sbin/nginx';
our $OutTop = $ENV{FAULTS_OUT} // "$Top/faults/out";
our $Owner = $$;
our @Masters;

# nothing buffered when a process forks, or a child's reopened STDOUT
# would write it a second time
STDOUT->autoflush(1);

my $json = JSON::PP->new->canonical->pretty;

# true when judging saved figures (FAULTS_JUDGE): start nothing
sub judging {
    return $ENV{FAULTS_JUDGE} ? 1 : 0;
}

# the value for a full run or for FAULTS_SCALE=tiny
sub scale {
    my ($full, $tiny) = @_;
    return $Tiny ? $tiny : $full;
}

sub new {
    my ($class, $name, $variant) = @_;

    my $self = bless { name => $name, variant => $variant // '',
                       checks => [], bounds => {} }, $class;

    $self->{title} = $name . ($self->{variant} ne '' ? " $self->{variant}"
                                                      : '');
    (my $dir = $self->{title}) =~ s{[ /]}{-}g;
    $self->{dir} = "$OutTop/$dir";

    return $self;
}

# a clean directory for this scenario's processes
sub dir {
    my ($self, $sub) = @_;

    if (!$self->{made}) {
        remove_tree($self->{dir});
        make_path($self->{dir});
        $self->{made} = 1;
        # GwRedis keeps its Redis files here
        $ENV{TEST_NGINX_REDIS_TMP} = $self->{dir};
    }

    return $self->{dir} unless defined $sub;

    make_path("$self->{dir}/$sub");
    return "$self->{dir}/$sub";
}

# Measures (the callback returns the figures), or reads the figures of an
# earlier run to judge them again (FAULTS_JUDGE).
sub figures_or {
    my ($self, $measure) = @_;

    if (my $file = $ENV{FAULTS_JUDGE}) {
        open my $in, '<', $file or die "$file: $!\n";
        local $/;
        my $all = decode_json(<$in>);
        my $fig = $all->{ $self->{title} }
            or die "no figures for \"$self->{title}\" in $file\n";
        return $fig->{figures};
    }

    return $measure->();
}

# A bound: the default unless FAULTS_BOUND_<NAME> overrides it.
sub bound {
    my ($self, $name, $default) = @_;

    my $env = 'FAULTS_BOUND_' . uc $name;
    my $v = exists $ENV{$env} ? $ENV{$env} : $default;
    $self->{bounds}{$name} = $v;

    return $v;
}

sub check {
    my ($self, $name, $ok, $detail) = @_;

    push @{ $self->{checks} }, { name => $name, ok => $ok ? 1 : 0,
                                 detail => $detail // '' };
    return $ok;
}

# Prints the figures, the checks and the verdict; writes them as JSON with
# FAULTS_FIGURES.  $row is one line of the README's table.  Returns the
# exit code (0 PASS, 1 FAIL).
sub finish {
    my ($self, $fig, $row) = @_;

    print "== $self->{title}\n";

    for my $k (sort keys %$fig) {
        my $v = $fig->{$k} // 'none';
        $v = JSON::PP->new->canonical->encode($v) if ref $v;
        print "  $k: $v\n";
    }

    my @failed;

    for my $c (@{ $self->{checks} }) {
        printf "  [%s] %s: %s\n", $c->{ok} ? 'ok' : 'FAIL', $c->{name},
               $c->{detail};
        push @failed, $c->{name} unless $c->{ok};
    }

    push @failed, 'no checks' unless @{ $self->{checks} };

    my $verdict = @failed ? 'FAIL' : 'PASS';

    print "ROW | $self->{title} | $row | $verdict |\n" if defined $row;
    print "$verdict $self->{title}",
          (@failed ? ': ' . join(', ', @failed) : ''), "\n";

    if (my $file = $ENV{FAULTS_FIGURES}) {
        my $all = {};
        if (open my $in, '<', $file) {
            local $/;
            my $text = <$in>;
            $all = decode_json($text) if $text =~ /\S/;
        }
        $all->{ $self->{title} } = { figures => $fig,
                                     checks => $self->{checks},
                                     bounds => $self->{bounds},
                                     verdict => $verdict };
        open my $out, '>', $file or die "$file: $!\n";
        print $out $json->encode($all);
        close $out;
    }

    return @failed ? 1 : 0;
}

# --- processes -------------------------------------------------------------

sub free_port {
    return GwRedis::free_port();
}

sub wait_port {
    my ($port, $secs) = @_;

    my $until = time + ($secs // 10);

    while (time < $until) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Timeout => 1);
        if ($s) {
            close $s;
            return 1;
        }
        sleep 0.02;
    }

    die "nothing listens on port $port\n";
}

sub load_modules {
    return join '', map {
        "load_module $Build/ngx_http_gw_${_}_module.so;\n"
    } @_;
}

# An nginx master (daemon off) with its workers, in its own prefix:
#   start_nginx(dir => ..., port => ..., workers => 2, main => '...',
#               http => '...', error_level => 'notice')
# Returns { master, dir, port, conf }.
sub start_nginx {
    my (%o) = @_;

    my $dir = $o{dir} or die "start_nginx: no dir\n";
    make_path("$dir/logs");

    my $conf = "$dir/nginx.conf";
    write_file($conf, nginx_conf(%o));

    system($Nginx, '-t', '-q', '-p', "$dir/", '-c', $conf) == 0
        or die "nginx -t failed for $conf\n";

    my $pid = fork // die "fork: $!\n";

    if ($pid == 0) {
        open STDOUT, '>>', "$dir/logs/stdout.log";
        open STDERR, '>>', "$dir/logs/stderr.log";
        exec $Nginx, '-p', "$dir/", '-c', $conf
            or die "exec $Nginx: $!\n";
    }

    push @Masters, $pid;

    my $ngx = { master => $pid, dir => $dir, port => $o{port},
                conf => $conf, opts => \%o };

    wait_port($o{port}) if $o{port};

    my $want = $o{workers} // 2;
    for (1 .. 250) {
        my @w = workers($ngx);
        last if @w >= $want;
        sleep 0.02;
    }

    return $ngx;
}

sub nginx_conf {
    my (%o) = @_;

    my $dir = $o{dir};
    my $workers = $o{workers} // 2;
    my $level = $o{error_level} // 'notice';

    return ($o{main} // '') . <<"_EOC_";
daemon off;
master_process on;
worker_processes $workers;
pid $dir/logs/nginx.pid;
error_log $dir/logs/error.log $level;
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
$o{http}
}
_EOC_
}

# rewrites the configuration (same options but these) and reloads
sub rewrite_conf {
    my ($ngx, %o) = @_;

    my %all = (%{ $ngx->{opts} }, %o);
    write_file($ngx->{conf}, nginx_conf(%all));
    $ngx->{opts} = \%all;
}

# worker pids: the master's children, from /proc
sub workers {
    my ($ngx) = @_;

    my @pids;

    for my $stat (glob "/proc/[0-9]*/stat") {
        open my $fh, '<', $stat or next;
        my $line = <$fh>;
        close $fh;
        next unless defined $line && $line =~ /^(\d+) \((.*)\) (\S) (\d+)/;
        next unless $4 == $ngx->{master};
        # a worker that exits is a zombie until the master reaps it
        next if $3 eq 'Z';
        push @pids, $1;
    }

    @pids = sort { $a <=> $b } @pids;

    return wantarray ? @pids : scalar @pids;
}

# HUP, then wait until the old workers are gone and the new ones run
sub reload {
    my ($ngx, $secs) = @_;

    my %old = map { $_ => 1 } workers($ngx);
    my $want = $ngx->{opts}{workers} // 2;

    kill 'HUP', $ngx->{master} or die "kill HUP: $!\n";

    my $until = time + ($secs // 30);

    while (time < $until) {
        sleep 0.02;
        my @now = workers($ngx);
        return @now if @now >= $want && !grep { $old{$_} } @now;
    }

    die "nginx in $ngx->{dir} did not reload\n";
}

# nginx -s <signal> (its notice goes to the scenario's log, not the terminal)
sub nginx_signal {
    my ($ngx, $sig) = @_;

    my $pid = fork // die "fork: $!\n";

    if ($pid == 0) {
        open STDOUT, '>>', "$ngx->{dir}/logs/stderr.log";
        open STDERR, '>&', \*STDOUT;
        exec $Nginx, '-p', "$ngx->{dir}/", '-c', $ngx->{conf}, '-s', $sig
            or die "exec $Nginx: $!\n";
    }

    waitpid($pid, 0);
    die "nginx -s $sig failed in $ngx->{dir}\n" if $?;
}

# waits until the master has $n workers, none of them in @gone
sub wait_workers {
    my ($ngx, $n, $secs, @gone) = @_;

    my %gone = map { $_ => 1 } @gone;
    my $until = time + ($secs // 10);

    while (time < $until) {
        my @now = grep { !$gone{$_} } workers($ngx);
        return @now if @now >= $n;
        sleep 0.01;
    }

    return grep { !$gone{$_} } workers($ngx);
}

sub stop_nginx {
    my ($ngx) = @_;

    my $pid = $ngx->{master} or return;

    kill 'QUIT', $pid;

    for (1 .. 250) {
        last if waitpid($pid, WNOHANG) == $pid;
        sleep 0.02;
    }

    if (kill 0, $pid) {
        kill 'KILL', $pid;
        kill 'KILL', workers($ngx);
        waitpid($pid, 0);
    }

    @Masters = grep { $_ != $pid } @Masters;
    $ngx->{master} = 0;
}

# A backend: a plain nginx (no module) answering 200 with a small JSON
# body; $delay_ms > 0 answers after that long.
sub start_backend {
    my ($self) = @_;

    my $port = free_port();

    return start_nginx(dir => $self->dir('backend'), port => $port,
                       workers => 1, error_level => 'error',
                       http => <<"_EOC_");
    server {
        listen 127.0.0.1:$port backlog=4096;
        location / {
            default_type application/json;
            return 200 '{"ok":true}\n';
        }
    }
_EOC_
}

sub start_redis {
    my ($port, @args) = @_;
    return GwRedis::start_redis(port => $port, args => \@args);
}

sub redis {
    my ($port, @cmd) = @_;
    return eval { GwRedis::command($port, @cmd) };
}

# $n GETs at once, each on its own connection (all connected first, then
# all written): [ { status, secs } ... ] in order, status 0 when no
# response came within $timeout seconds.
sub http_burst_timed {
    my ($port, $n, $path, $headers, $timeout) = @_;

    my @socks = map { GwRedis::connect_http($port) } 1 .. $n;
    my $req = "GET $path HTTP/1.0\r\nHost: localhost\r\n";
    $req .= "$_: $headers->{$_}\r\n" for sort keys %{ $headers || {} };
    $req .= "\r\n";

    my $t0 = time;
    syswrite($_, $req) for @socks;

    my @resp = ('') x $n;
    my @secs = (undef) x $n;
    my %idx = map { ("$socks[$_]" => $_) } 0 .. $#socks;
    my $sel = IO::Select->new(@socks);
    my $until = $t0 + ($timeout // 10);

    while ($sel->count && time < $until) {
        for my $s ($sel->can_read(0.05)) {
            my $i = $idx{"$s"};
            my $got = sysread($s, my $buf, 65536);
            if ($got) {
                $resp[$i] .= $buf;
                next;
            }
            $secs[$i] = time - $t0;
            $sel->remove($s);
            close $s;
        }
    }

    close $_ for $sel->handles;

    return map {
        { status => ($resp[$_] =~ m{^HTTP/\S+ (\d+)} ? $1 + 0 : 0),
          secs => $secs[$_] }
    } 0 .. $n - 1;
}

# A stand-in peer on $port: a process that accepts connections and serves
# each in a process of its own with $serve->($socket).  Returns its pid
# (GwRedis stops it at exit, with the connections it serves).
sub standin {
    my ($port, $serve) = @_;

    my $l = IO::Socket::INET->new(Listen => 128, LocalAddr => '127.0.0.1',
                                  LocalPort => $port, ReuseAddr => 1)
        or die "stand-in on $port: $!\n";

    my $pid = fork // die "fork: $!\n";

    if ($pid) {
        close $l;
        push @GwRedis::Children, $pid;
        return $pid;
    }

    POSIX::setpgid(0, 0);
    $SIG{TERM} = sub { kill 'TERM', -$$; POSIX::_exit(0) };
    $SIG{CHLD} = 'IGNORE';

    while (my $c = $l->accept) {
        my $kid = fork;
        if (defined $kid && $kid == 0) {
            $SIG{TERM} = 'DEFAULT';
            $SIG{PIPE} = 'IGNORE';
            close $l;
            $serve->($c);
            POSIX::_exit(0);
        }
        close $c;
    }

    POSIX::_exit(0);
}

# writes all of $data, false when the peer went away
sub send_all {
    my ($c, $data) = @_;

    while (length $data) {
        my $n = syswrite($c, $data);
        return 0 unless $n;
        substr($data, 0, $n) = '';
    }

    return 1;
}

# --- /proc -----------------------------------------------------------------

# resident set size in KiB (VmRSS: anonymous, file and shared pages)
sub rss_kb {
    my ($pid) = @_;

    open my $f, '<', "/proc/$pid/status" or return undef;

    while (my $l = <$f>) {
        return $1 + 0 if $l =~ /^VmRSS:\s+(\d+)/;
    }

    return undef;
}

sub fds {
    my ($pid) = @_;

    opendir my $d, "/proc/$pid/fd" or return undef;
    my $n = grep { !/^\./ } readdir $d;
    closedir $d;

    return $n;
}

sub cpu_ticks {
    my ($pid) = @_;

    open my $f, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$f>;
    $stat =~ s/^.*\) //;
    my @f = split ' ', $stat;

    return $f[11] + $f[12];
}

# The peers of a process's TCP sockets: { inode => [local port, remote
# port] }, from its network namespace's /proc/<pid>/net/tcp
sub tcp_peers {
    my ($pid) = @_;

    my %peer;

    open my $in, '<', "/proc/$pid/net/tcp" or return \%peer;
    <$in>;

    while (my $l = <$in>) {
        my @f = split ' ', $l;
        my ($lp) = $f[1] =~ /:([0-9A-F]+)$/;
        my ($rp) = $f[2] =~ /:([0-9A-F]+)$/;
        $peer{ $f[9] } = [hex $lp, hex $rp];
    }

    return \%peer;
}

# A worker's open files by kind: { fds => all, upstream => sockets to
# $peers{upstream} (the keepalive cache), redis => to $peers{redis},
# client => ..., other => the rest (listeners, files, eventfd) }
sub fd_kinds {
    my ($pid, $peers) = @_;

    my %n = (fds => 0, other => 0);
    $n{$_} = 0 for keys %$peers;

    my $tcp = tcp_peers($pid);

    opendir my $d, "/proc/$pid/fd" or return undef;

    for my $fd (readdir $d) {
        next if $fd =~ /^\./;
        $n{fds}++;
        my $link = readlink("/proc/$pid/fd/$fd") // '';
        my $kind = 'other';
        if ($link =~ /^socket:\[(\d+)\]$/ && $tcp->{$1}) {
            my ($lp, $rp) = @{ $tcp->{$1} };
            for my $k (keys %$peers) {
                $kind = $k if $rp == $peers->{$k} || $lp == $peers->{$k}
                              && $k eq 'client' && $rp != 0;
            }
        }
        $n{$kind}++;
    }

    closedir $d;

    return \%n;
}

# { pid => { rss => KiB, fds => n, and fd_kinds() with %peers } } for
# every worker
sub snapshot {
    my ($ngx, %peers) = @_;

    my %s;

    for my $pid (workers($ngx)) {
        my $k = fd_kinds($pid, \%peers) // {};
        # what a leak would grow: every fd but the upstream keepalive
        # cache, which legitimately fills up to its size under load
        $s{$pid} = { rss => rss_kb($pid), %$k,
                     held => ($k->{fds} // 0) - ($k->{upstream} // 0) };
    }

    return \%s;
}

# --- logs ------------------------------------------------------------------

sub write_file {
    my ($file, $text) = @_;

    open my $out, '>', $file or die "$file: $!\n";
    print $out $text;
    close $out;
}

sub log_size {
    my ($file) = @_;
    return -s $file // 0;
}

# Error log lines from byte $from: { error => n, crit => n, alert => n,
# emerg => n, warn => n, lines => [the first 5 of level warn or worse] }
sub error_lines {
    my ($file, $from, $to) = @_;

    my %n = (emerg => 0, alert => 0, crit => 0, error => 0, warn => 0,
             lines => []);

    open my $in, '<', $file or return \%n;
    seek $in, $from // 0, 0;

    while (my $l = <$in>) {
        last if defined $to && tell($in) > $to;
        next unless $l =~ /\[(emerg|alert|crit|error|warn)\]/;
        $n{$1}++;
        push @{ $n{lines} }, substr($l =~ s/\s+$//r, 0, 240)
            if @{ $n{lines} } < 5;
    }

    return \%n;
}

# access log records (space separated fields, named by @names)
sub access_log {
    my ($file, @names) = @_;

    my @recs;

    open my $in, '<', $file or return \@recs;

    while (<$in>) {
        chomp;
        my @v = split / /;
        my %r;
        @r{@names} = @v;
        push @recs, \%r;
    }

    return \@recs;
}

# --- load: wrk -------------------------------------------------------------

# The Lua every run gets: exact per-status counts, latency percentiles in
# microseconds, errors; an optional global "limit" of responses per thread
# after which the thread stops (requests bounded in number).
my $wrk_lua = <<'_EOL_';
local threads = {}

function setup(thread)
    thread:set("tid", #threads + 1)
    table.insert(threads, thread)
end

statuses = {}
responses = 0

function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
    responses = responses + 1
    if on_response then
        on_response(status, headers, body)
    end
    if limit and responses == limit then
        -- wrk runs for its duration whatever its threads do: tell
        -- wrk_wait, which then stops it
        io.write("FAULTS limit reached\n")
        io.flush()
        wrk.thread:stop()
    end
end

function done(summary, latency, requests)
    local t = {}
    for _, th in ipairs(threads) do
        for k, v in pairs(th:get("statuses")) do
            t[k] = (t[k] or 0) + v
        end
    end
    local parts = {}
    for k, v in pairs(t) do
        parts[#parts + 1] = k .. "=" .. v
    end
    io.write("FAULTS status ", table.concat(parts, " "), "\n")
    -- a scenario's own counts: a global table "tally" in each thread
    local tally = {}
    for _, th in ipairs(threads) do
        for k, v in pairs(th:get("tally") or {}) do
            tally[k] = (tally[k] or 0) + v
        end
    end
    parts = {}
    for k, v in pairs(tally) do
        parts[#parts + 1] = k .. "=" .. v
    end
    io.write("FAULTS tally ", table.concat(parts, " "), "\n")
    io.write(string.format(
        "FAULTS latency p50=%d p99=%d p999=%d max=%d\n",
        latency:percentile(50), latency:percentile(99),
        latency:percentile(99.9), latency.max))
    local e = summary.errors
    io.write(string.format(
        "FAULTS summary requests=%d duration=%d connect=%d read=%d "
        .. "write=%d timeout=%d\n", summary.requests, summary.duration,
        e.connect, e.read, e.write, e.timeout))
end
_EOL_

# Starts wrk in the background:
#   wrk_start(self, name => 'load', port => p, path => '/api/x',
#             secs => 5, conns => 16, threads => 1, lua => '...')
# The scenario's Lua defines request() (and delay(), init()...).  wrk_wait
# stops it with SIGINT (wrk then reports as at the end of its duration)
# after secs (fractions allowed), or waits for it to stop by itself (a
# "limit" of responses per thread) when secs is not given.
sub wrk_start {
    my ($self, %o) = @_;

    my $name = $o{name} // 'wrk';
    my $lua = $self->dir . "/$name.lua";
    write_file($lua, ($o{lua} // '') . "\n" . $wrk_lua);

    my $out = $self->dir . "/$name.out";
    my @cmd = ('wrk', '-t' . ($o{threads} // 1), '-c' . ($o{conns} // 16),
               '-d' . int(($o{secs} // 3000) + 60) . 's', '--timeout', '10s',
               '-s', $lua, "http://127.0.0.1:$o{port}" . ($o{path} // '/'));

    my $pid = fork // die "fork: $!\n";

    if ($pid == 0) {
        open STDOUT, '>', $out;
        open STDERR, '>&', \*STDOUT;
        exec @cmd or die "exec wrk: $!\n";
    }

    return { pid => $pid, out => $out, started => time, secs => $o{secs},
             threads => $o{threads} // 1 };
}

# Waits for wrk; returns { requests, status => {code => n}, tally =>
# {the scenario's counts}, errors => {connect, read, write, timeout},
# p50_ms, p99_ms, p999_ms, max_ms, rps }.  tick => sub is called about
# every 0.1 s meanwhile.
sub wrk_wait {
    my ($w, %o) = @_;

    my $tick = $o{tick} // sub {};

    if (defined $w->{secs}) {
        while ((my $left = $w->{started} + $w->{secs} - time) > 0) {
            sleep($left < 0.1 ? $left : 0.1);
            $tick->();
        }
        kill 'INT', $w->{pid};

    } else {
        # every thread reached its limit of responses
        while (1) {
            if (waitpid($w->{pid}, WNOHANG) == $w->{pid}) {
                $w->{rc} = $?;
                last;
            }
            my $text = -s $w->{out}
                       ? do { local (@ARGV, $/) = $w->{out}; <> } : '';
            my $n = () = $text =~ /^FAULTS limit reached$/mg;
            if ($n >= $w->{threads}) {
                kill 'INT', $w->{pid};
                last;
            }
            $tick->();
            sleep 0.1;
        }
    }

    if (!defined $w->{rc}) {
        waitpid($w->{pid}, 0);
        $w->{rc} = $?;
    }

    my $rc = $w->{rc};

    open my $in, '<', $w->{out} or die "$w->{out}: $!\n";
    local $/;
    my $text = <$in>;
    close $in;

    my %r = (status => {}, errors => {});

    if ($text =~ /^FAULTS status (.*)$/m) {
        for (split ' ', $1) {
            my ($k, $v) = split /=/;
            $r{status}{$k} = $v + 0;
        }
    }

    if ($text =~ /^FAULTS tally (.*)$/m) {
        for (split ' ', $1) {
            my ($k, $v) = split /=/;
            $r{tally}{$k} = $v + 0;
        }
    }

    if ($text =~ /^FAULTS latency (.*)$/m) {
        my %l = map { split /=/ } split ' ', $1;
        $r{"${_}_ms"} = $l{$_} / 1000 for keys %l;
    }

    if ($text =~ /^FAULTS summary (.*)$/m) {
        my %s = map { split /=/ } split ' ', $1;
        $r{requests} = $s{requests} + 0;
        $r{rps} = $s{duration} ? int($s{requests} / $s{duration} * 1e6)
                               : 0;
        $r{errors}{$_} = $s{$_} + 0 for qw(connect read write timeout);
    }

    die "wrk failed ($rc):\n$text" unless defined $r{requests};

    return \%r;
}

sub wrk_errors {
    my ($r) = @_;
    my $n = 0;
    $n += $_ for values %{ $r->{errors} };
    return $n;
}

# --- gdb -------------------------------------------------------------------

# Attaches gdb (batch mode) to $pid and runs $script, a gdb command file in
# which "echo FAULTS-READY\n" marks the moment the breakpoints are set.
# Returns once it is printed, or dies with gdb's output (e.g. ptrace not
# permitted).
sub gdb_start {
    my ($self, $name, $pid, $script) = @_;

    my $cmds = $self->dir . "/$name.gdb";
    my $out = $self->dir . "/$name.gdb.out";
    write_file($cmds, $script);
    write_file($out, '');

    my $gdb = fork // die "fork: $!\n";

    if ($gdb == 0) {
        open STDOUT, '>', $out;
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';
        # make test-asan preloads the ASan runtime into everything; gdb
        # does not run with it
        delete $ENV{LD_PRELOAD};
        exec 'gdb', '-q', '-nx', '-batch', '-p', $pid, '-x', $cmds
            or die "exec gdb: $!\n";
    }

    my $g = { pid => $gdb, out => $out, target => $pid };

    gdb_wait($g, qr/^FAULTS-READY/m, 30)
        or die "gdb did not attach to $pid:\n" . gdb_output($g);

    return $g;
}

sub gdb_output {
    my ($g) = @_;
    open my $in, '<', $g->{out} or return '';
    local $/;
    return scalar <$in>;
}

# waits until gdb's output matches $re (true) or $secs pass (false)
sub gdb_wait {
    my ($g, $re, $secs) = @_;

    my $until = time + $secs;

    while (time < $until) {
        return 1 if gdb_output($g) =~ $re;
        if (waitpid($g->{pid}, WNOHANG) == $g->{pid}) {
            $g->{done} = 1;
            return gdb_output($g) =~ $re ? 1 : 0;
        }
        sleep 0.01;
    }

    return 0;
}

# waits for gdb to finish its script; interrupts it first if it still
# waits for its breakpoint (the script's next commands then run)
sub gdb_end {
    my ($g, $secs) = @_;

    return gdb_output($g) if $g->{done};

    for my $sig (0, 'INT', 'INT', 'KILL') {
        kill $sig, $g->{pid} if $sig;
        my $until = time + ($secs // 5);
        while (time < $until) {
            if (waitpid($g->{pid}, WNOHANG) == $g->{pid}) {
                $g->{done} = 1;
                return gdb_output($g);
            }
            sleep 0.02;
        }
    }

    return gdb_output($g);
}

# --- tokens ----------------------------------------------------------------

# An HS256 key, its JWKS and tokens, by Crypt::JWT (independent of the
# module).  Returns { jwks => file, secret => bytes, kid => 'hs' }.
sub hs256_keys {
    my ($self) = @_;

    require Crypt::PRNG;
    require MIME::Base64;

    my $secret = Crypt::PRNG::random_bytes(32);
    my $file = $self->dir . '/jwks.json';

    write_file($file, encode_json({ keys => [
        { kty => 'oct', kid => 'hs', alg => 'HS256',
          k => MIME::Base64::encode_base64url($secret) } ] }) . "\n");

    return { jwks => $file, secret => $secret, kid => 'hs',
             jwks_text => do { local (@ARGV, $/) = $file; <> } };
}

sub hs256_token {
    my ($keys, $claims) = @_;

    require Crypt::JWT;

    return Crypt::JWT::encode_jwt(payload => $claims, alg => 'HS256',
                                  key => $keys->{secret},
                                  extra_headers => { kid => $keys->{kid} });
}

# --- numbers ---------------------------------------------------------------

sub percentile {
    my ($p, @v) = @_;

    return undef unless @v;
    @v = sort { $a <=> $b } @v;

    my $i = int($p / 100 * $#v + 0.5);
    return $v[$i];
}

sub max_of {
    my $m;
    for (@_) { $m = $_ if defined $_ && (!defined $m || $_ > $m) }
    return $m;
}

# the worst growth of a /proc figure ('rss', 'fds') from one snapshot to
# another, over the workers in both; undef when none is in both
sub growth {
    my ($before, $after, $what) = @_;

    my $worst;

    for my $pid (keys %$before) {
        next unless $after->{$pid};
        my $d = $after->{$pid}{$what} - $before->{$pid}{$what};
        $worst = $d if !defined $worst || $d > $worst;
    }

    return $worst;
}

sub sum_of {
    my $s = 0;
    $s += $_ // 0 for @_;
    return $s;
}

sub round {
    my ($v, $digits) = @_;
    return undef unless defined $v;
    return sprintf("%.${\($digits // 1)}f", $v) + 0;
}

END {
    if ($$ == $Owner) {
        my $rc = $?;
        stop_nginx({ master => $_ }) for reverse @Masters;
        $? = $rc;
    }
}

1;
