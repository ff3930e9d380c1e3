# Copyright (C) nginx-gw authors
package Test::Nginx::Util;

# nginx-gw's compact stand-in for Test::Nginx::Util: settings, the server
# root, nginx.conf generation, starting and stopping nginx (optionally under
# valgrind), reading the logs, and the one-shot fake TCP peer.  The block
# format and the assertions live in Test::Nginx::Socket.  Behaviour follows
# upstream Test::Nginx 0.33; see t/compat/README for what is left out.

use strict;
use warnings;

use Exporter 'import';
use POSIX qw(WNOHANG _exit);
use Time::HiRes qw(sleep time);
use File::Path qw(make_path remove_tree);
use File::Spec ();
use File::Temp qw(tempfile);
use IO::Socket::INET ();
use IO::Socket::UNIX ();
use Socket qw(SOCK_STREAM);
use Test::More ();

our @EXPORT = qw(
    repeat_each no_shuffle no_long_string no_root_location master_on
    master_off workers worker_connections log_level add_block_preprocessor
    env_to_nginx bail_out server_root html_dir server_port
);
# for Test::Nginx::Socket only
our %EXPORT_TAGS = (internal => [qw(
    expand_env parse_time nginx_version setup_server_root write_user_files
    write_config start_nginx stop_nginx alive slurp error_log_lines
    access_log_lines start_tcp_server stop_tcp_server cleanup verbose
    $RepeatEach $NoShuffle $NoLongString $Timeout $UseValgrind $NoClean
    $ServerAddr $ServerPort $NginxPid $NginxIsChild $ErrLogFile $ValgrindLog
    @BlockPreprocessors
)]);
our @EXPORT_OK = @{ $EXPORT_TAGS{internal} };

# Modes of upstream Test::Nginx that this runner does not implement: die
# rather than silently run the suite in a different mode than asked for.
for my $v (qw(USE_HUP USE_HTTP2 USE_HTTP3 USE_STAP USE_RR CHECK_LEAK
              BENCHMARK RANDOMIZE NO_NGINX_MANAGER CLIENT_PORT
              CHECK_ACCUM_ERR_LOG EVENT_TYPE POSTPONE_OUTPUT LD_PRELOAD
              ERROR_LOG WORKER_USER REUSE_PORT FAST_SHUTDOWN
              IGNORE_MISSING_DIRECTIVES VALGRIND_EXIT_ON_FIRST_ERR))
{
    die "TEST_NGINX_$v is not supported by the nginx-gw compat runner "
        . "(t/compat); install Test::Nginx to use it\n"
        if $ENV{"TEST_NGINX_$v"};
}
die "TEST_NGINX_FORCE_RESTART_ON_TEST=0 is not supported by t/compat\n"
    if defined $ENV{TEST_NGINX_FORCE_RESTART_ON_TEST}
       && !$ENV{TEST_NGINX_FORCE_RESTART_ON_TEST};

# Defaults are upstream's.
our $RepeatEach        = 1;
our $NoShuffle         = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $NoLongString      = 0;
our $NoRootLocation    = 0;
our $MasterProcess     = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $Workers           = 1;
our $WorkerConnections = 64;
our $LogLevel          = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $Timeout           = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $Sleep             = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $NginxBinary       = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $LoadModules       = $ENV{TEST_NGINX_LOAD_MODULES};
our $UseValgrind       = $ENV{TEST_NGINX_USE_VALGRIND};
our $NoClean           = $ENV{TEST_NGINX_NO_CLEAN};
our $Verbose           = $ENV{TEST_NGINX_VERBOSE};
our $ServerAddr        = '127.0.0.1';
our $ServerPort        = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}
                         || 1984;
our (@EnvToNginx, @BlockPreprocessors);

our $ServRoot   = $ENV{TEST_NGINX_SERVROOT}
                  || File::Spec->rel2abs('t/servroot');
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;       # upstream exports it too
our $LogDir     = "$ServRoot/logs";
our $HtmlDir    = "$ServRoot/html";
our $ConfDir    = "$ServRoot/conf";
our $ConfFile   = "$ConfDir/nginx.conf";
our $PidFile    = "$LogDir/nginx.pid";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $StderrFile = "$LogDir/nginx.stderr";
our $ValgrindLog = "$LogDir/valgrind.log";

our $NginxPid;          # the running nginx (master, or the only process)
our $NginxIsChild;      # started by fork+exec (valgrind): we can waitpid
our $NginxExit;         # wait status once reaped
our $ErrLogPos = 0;     # error.log offset already seen by this block
our ($TcpServerPid, $TcpQueryFile);
our $InChild = 0;
my $NginxV;

sub repeat_each (@)        { $RepeatEach = shift if @_; $RepeatEach }
sub no_shuffle ()          { $NoShuffle = 1 }
sub no_long_string ()      { $NoLongString = 1 }
sub no_root_location ()    { $NoRootLocation = 1 }
sub master_on ()           { $MasterProcess = 'on' }
sub master_off ()          { $MasterProcess = 'off' }
sub workers (@)            { $Workers = shift if @_; $Workers }
sub worker_connections (@) { $WorkerConnections = shift if @_;
                             $WorkerConnections }
sub log_level (@)          { $LogLevel = shift if @_; $LogLevel }
sub server_root ()         { $ServRoot }
sub html_dir ()            { $HtmlDir }
sub server_port ()         { $ServerPort }

# upstream unshifts: the preprocessor added last runs first
sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }

sub env_to_nginx (@) {
    die "env_to_nginx: no arguments specified\n" unless @_;
    for my $v (@_) {
        die "env_to_nginx: bad argument value: $v\n"
            if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

sub bail_out (@) {
    cleanup();
    Test::More::BAIL_OUT(join '', @_);
}

sub verbose (@) { warn "# compat: ", @_, "\n" if $Verbose }

# "50ms" / "1.5s" / "2" (seconds), as upstream's parse_time
sub parse_time ($) {
    my $t = shift;
    return undef unless defined $t;
    $t =~ s/^\s+|\s+$//g;
    return $1 / 1000 if $t =~ /^([\d.]+)ms$/;
    $t =~ s/s$//;
    return $t;
}

sub nginx_version () {
    $NginxV //= `$NginxBinary -V 2>&1`;
    bail_out("cannot run \"$NginxBinary -V\" (TEST_NGINX_BINARY): $NginxV")
        if $? != 0 || $NginxV !~ m{nginx/(\d+\.\d+\.\d+)};
    return $1;
}

# --- $TEST_NGINX_* expansion ----------------------------------------------

sub port_is_free ($) {
    my $port = shift;
    my $s = IO::Socket::INET->new(LocalAddr => $ServerAddr,
                                  LocalPort => $port, Proto => 'tcp',
                                  Listen => 5, ReuseAddr => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

# $ports: this block's TEST_NGINX_RAND_PORT_N => port map, so that every
# section of one block sees the same port for the same name.
sub expand_env ($$$) {
    my ($text, $name, $ports) = @_;
    return $text if !defined $text || ref $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        if ($var =~ /^TEST_NGINX_RAND_PORT_\d+$/) {
            my %used = map { $_ => 1 } $ServerPort, values %$ports;
            $ports->{$var} //= do {
                my $p;
                for (1 .. 1000) {
                    my $try = 1988 + int rand(65535 - 1988);
                    next if $used{$try};
                    if (port_is_free($try)) { $p = $try; last }
                }
                bail_out("$name - cannot find a free port for $var") unless $p;
                $p;
            };
        } else {
            bail_out("$name - No environment $var defined.")
                unless defined $ENV{$var};
            $ENV{$var};
        }
    }ge;
    return $text;
}

# --- server root, user files, nginx.conf ----------------------------------

sub setup_server_root () {
    # Only remove what we create: a mis-set TEST_NGINX_SERVROOT must not
    # cost anyone their data.
    remove_tree($ConfDir, $HtmlDir, $LogDir, glob("$ServRoot/*_temp"),
                glob("$ServRoot/*_cache"), "$ServRoot/cache")
        if -d $ServRoot;
    make_path($LogDir, $HtmlDir, $ConfDir);
    bail_out("cannot create $ServRoot") unless -d $ConfDir;
    open my $fh, '>', "$HtmlDir/index.html" or bail_out("index.html: $!");
    print $fh '<html><head><title>It works!</title></head>'
              . '<body>It works!</body></html>';
    close $fh;
    $ErrLogPos = 0;
}

# --- user_files: ">>> name [touch -t date]" lines followed by the content;
# relative names go under html/.  `eval` may give [[name, body, date], ...].
sub write_user_files ($$) {
    my ($block, $ports) = @_;
    my $files = $block->user_files;
    return unless defined $files;
    my $name = $block->name;
    if (!ref $files) {
        my @list;
        for my $line (split /^/, $files) {
            if ($line =~ /^>>> (\S+)(?:\s+(.+))?/) {
                push @list, [$1, '', $2];
            } elsif (@list) {
                $list[-1][1] .= $line;
            }
        }
        $files = \@list;
    }
    bail_out("$name - user_files must be a string or an ARRAY")
        unless ref $files eq 'ARRAY';
    for my $f (@$files) {
        my ($fname, $body, $date) = @$f;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        make_path($1) if $path =~ m{(.*)/} && !-d $1;
        open my $out, '>', $path or bail_out("$name - $path: $!");
        binmode $out;
        print $out expand_env($body // '', $name, $ports);
        close $out;
        if ($date) {
            system('touch', '-t', $date, $path) == 0
                or bail_out("$name - touch -t $date $path failed");
        }
    }
}

sub write_config ($$$) {
    my ($block, $config, $ports) = @_;
    my $name = $block->name;
    my $main = join ' ', (map { "load_module $_;" }
                          grep { length } split /\s+/, $LoadModules // ''),
                         $block->main_config // '';
    $main = expand_env($main, $name, $ports);
    my $http = expand_env($block->http_config // '', $name, $ports);
    my $level = $block->log_level // $LogLevel;
    $level =~ s/\s+//g;
    my $valgrind = $UseValgrind && !defined $block->must_die;

    # temp paths inside the server root, unless the module was left out of
    # the binary or the block sets its own (as upstream does)
    my $temps = '';
    for my $t (qw(client_body proxy fastcgi scgi uwsgi)) {
        next if $NginxV =~ /--without-http_${t}_module/
                || $http =~ /\b${t}_temp_path\b/;
        $temps .= "\n    ${t}_temp_path $ServRoot/${t}_temp;";
    }
    my $root = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_
    my $env = join '', map { my $v = /\s/ ? "'$_'" : $_; "env $v;\n" }
                       qw(LD_PRELOAD LD_LIBRARY_PATH ASAN_OPTIONS),
                       @EnvToNginx;
    # Under valgrind nginx runs in the foreground as our child so that we
    # get its exit status; like upstream we keep master_process as set
    # (valgrind follows the fork()ed workers into the same log).
    my $daemon = $valgrind ? 'off' : 'on';
    my $master = $MasterProcess;
    my $user = $> == 0 ? "user root;\n" : '';

    open my $out, '>', $ConfFile or bail_out("$name - $ConfFile: $!");
    print $out <<"_EOC_";
# generated by nginx-gw t/compat for: $name
worker_processes  $Workers;
daemon $daemon;
master_process $master;
error_log $ErrLogFile $level;
pid       $PidFile;
$env$user
$main

http {
    access_log $AccLogFile;$temps

    default_type text/plain;
    keepalive_timeout  68000ms;

$http

    server {
        listen          $ServerPort;
        server_name     'localhost';
        client_max_body_size 30M;

        # Begin test case config...
$config
        # End test case config.

$root    }
}

events {
    accept_mutex off;
    worker_connections  $WorkerConnections;
}
_EOC_
    close $out;
}

# --- nginx processes -------------------------------------------------------

# kill(0) is not enough: the daemonized nginx is reparented to pid 1, which
# may reap it late, and a zombie still "exists".
sub alive ($) {
    my $pid = shift;
    return 0 unless $pid && kill 0, $pid;
    if ($NginxIsChild && defined $NginxPid && $pid == $NginxPid) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid) { $NginxExit = $?; return 0 }
    }
    if (open my $st, '<', "/proc/$pid/stat") {
        my $s = <$st> // '';
        return 0 if $s =~ /^\d+ \(.*\) [ZX] /s;
    }
    return 1;
}

sub wait_gone ($$) {
    my ($pid, $secs) = @_;
    my $until = time + $secs;
    while (alive($pid)) {
        return 0 if time > $until;
        sleep 0.005;
    }
    return 1;
}

sub read_pid_file () {
    open my $in, '<', $PidFile or return undef;
    my $pid = <$in> // '';
    close $in;
    return $pid =~ /^\s*(\d+)\s*$/ ? $1 : undef;
}

# listening on our port? (/proc/net/tcp, so that no probe connection ends
# up in error.log; a connect() probe where /proc is missing)
sub port_listening ($) {
    my $port = shift;
    my $hex = sprintf ':%04X', $port;
    my $seen_proc = 0;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $in, '<', $f or next;
        $seen_proc = 1;
        while (<$in>) {
            my @f = split ' ';
            return 1 if @f > 3 && $f[1] =~ /\Q$hex\E$/ && $f[3] eq '0A';
        }
    }
    return 0 if $seen_proc;
    return IO::Socket::INET->new(PeerAddr => $ServerAddr, PeerPort => $port,
                                 Timeout => 0.2) ? 1 : 0;
}

sub slurp ($) {
    open my $in, '<', shift or return '';
    local $/;
    return scalar <$in>;
}

# Starts nginx for the current config.  Returns (wait status, message):
# status 0 means running and listening.  As upstream, the normal mode is
# "daemon on" so that exit status reports a failed start; under valgrind
# nginx stays in the foreground as our child.
sub start_nginx ($$) {
    my ($name, $must_die) = @_;
    my @cmd = ($NginxBinary, '-p', "$ServRoot/", '-c', $ConfFile,
               '-e', $ErrLogFile);
    my $valgrind = $UseValgrind && !$must_die;
    my $t0 = time;
    ($NginxPid, $NginxIsChild, $NginxExit) = (undef, 0, undef);

    if (!$valgrind) {
        my $status;
        for my $try (1 .. 60) {
            system(join(' ', map { quotemeta } @cmd)
                   . " >/dev/null 2>" . quotemeta($StderrFile));
            $status = $?;
            last if $status == 0 || $must_die;
            # the previous nginx (or a stray one) may still hold the port
            last unless slurp($StderrFile) =~ /Address already in use/;
            verbose("$name - port busy, retrying");
            sleep 0.05;
        }
        return ($status, "nginx exited with status " . ($status >> 8)
                         . ": " . slurp($StderrFile))
            if $status != 0;
        my $until = time + $Timeout;
        # the daemon writes the pid file just after the fork we waited for
        until (defined($NginxPid = read_pid_file()) && alive($NginxPid)) {
            return (-1, "nginx started but wrote no pid file $PidFile")
                if time > $until;
            sleep 0.002;
        }
    } else {
        my $supp = -f 't/valgrind.suppress' ? 't/valgrind.suppress'
                 : -f 'valgrind.suppress' ? 'valgrind.suppress' : undef;
        my @vg = $UseValgrind =~ /^\d+$/
            ? ('--tool=memcheck', '--leak-check=full',
               '--show-possibly-lost=no', '--errors-for-leak-kinds=definite',
               '--keep-debuginfo=yes', '--num-callers=100',
               '--gen-suppressions=all', '--error-exitcode=99',
               ($supp ? "--suppressions=$supp" : ()))
            : split ' ', $UseValgrind;
        unshift @cmd, 'valgrind', '-q', "--log-file=$ValgrindLog", @vg;
        my $pid = fork // bail_out("$name - fork: $!");
        if ($pid == 0) {
            $InChild = 1;
            setpgrp;
            open STDOUT, '>', '/dev/null';
            open STDERR, '>>', $StderrFile;
            exec @cmd or _exit(127);
        }
        ($NginxPid, $NginxIsChild) = ($pid, 1);
    }

    # wait for the listening socket (slow under valgrind)
    my $until = time + ($valgrind ? 60 : $Timeout + 2);
    until (port_listening($ServerPort)) {
        if (!alive($NginxPid)) {
            my $st = $NginxExit // -1;
            undef $NginxPid;
            return ($st || -1, "nginx exited early (status " . ($st >> 8)
                               . "): " . slurp($StderrFile));
        }
        return (-1, "nginx does not listen on port $ServerPort")
            if time > $until;
        sleep 0.005;
    }
    verbose(sprintf "%s - nginx %d started in %.3fs", $name, $NginxPid,
                    time - $t0);
    return (0, '');
}

# Graceful QUIT, then TERM, then KILL (the process group if it has one).
# Returns the wait status when nginx was our child, else undef.
sub stop_nginx ($) {
    my $name = shift;
    my $pid = $NginxPid // read_pid_file();
    my $t0 = time;
    if ($pid && alive($pid) && looks_like_nginx($pid)) {
      SIG: {
        for my $sig ('QUIT', 'TERM') {
            kill $sig, $pid;
            last SIG if wait_gone($pid, $UseValgrind ? 30 : $Timeout);
            warn "$name - nginx $pid did not exit on SIG$sig\n";
        }
        kill 'KILL', (getpgrp($pid) == $pid ? -$pid : $pid);
        wait_gone($pid, 5);
      }
        verbose(sprintf "%s - nginx %d stopped in %.3fs", $name, $pid,
                        time - $t0);
    }
    undef $NginxPid;        # kept until here: alive() reaps our child
    return $NginxExit;
}

# never signal a recycled pid from a stale pid file
sub looks_like_nginx ($) {
    my $pid = shift;
    my $cmd = slurp("/proc/$pid/cmdline");
    return 1 if !-e "/proc/$pid";
    return $cmd =~ /nginx|valgrind|memcheck/;
}

# --- logs ------------------------------------------------------------------

# error.log lines written since the previous call in this block (upstream
# sleeps a little first: the log phase runs after the response is sent).
sub error_log_lines (;$) {
    my $nginx_stopped = shift;
    sleep $Sleep * 3 unless $nginx_stopped;
    open my $in, '<', $ErrLogFile or return [];
    seek $in, $ErrLogPos, 0;
    my @lines = <$in>;
    $ErrLogPos = tell $in;
    close $in;
    return \@lines;
}

# access.log is read whole, as upstream does.
sub access_log_lines () {
    open my $in, '<', $AccLogFile or return [];
    my @lines = <$in>;
    return \@lines;
}

# --- fake TCP peer (tcp_listen / tcp_reply / tcp_query / tcp_no_close) ----

# A forked one-shot server: accepts one connection, reads the query (all of
# --- tcp_query's length if given, else one read), saves it for the
# tcp_query check, sends the reply, then closes or (tcp_no_close) holds the
# connection open until killed.
sub start_tcp_server ($$) {
    my ($block, $ports) = @_;
    my $name = $block->name;
    my $target = expand_env($block->tcp_listen, $name, $ports);
    $target =~ s/^\s+|\s+$//g;
    my $reply = $block->tcp_reply;
    bail_out("$name - no --- tcp_reply specified but --- tcp_listen is "
             . "specified") unless defined $reply;
    my $want = defined $block->tcp_query ? length $block->tcp_query : 0;

    my $sock;
    for (1 .. 50) {
        if ($target =~ /^\d+$/) {
            $sock = IO::Socket::INET->new(LocalAddr => $ServerAddr,
                        LocalPort => $target, Proto => 'tcp',
                        ReuseAddr => 1, Listen => 5);
        } elsif ($target =~ /\.sock$/) {
            unlink $target;
            $sock = IO::Socket::UNIX->new(Local => $target,
                        Type => SOCK_STREAM, Listen => 5);
        } else {
            bail_out("$name - bad tcp_listen target: $target");
        }
        last if $sock;
        sleep 0.1;
    }
    bail_out("$name - cannot listen on $target: $!") unless $sock;
    (undef, $TcpQueryFile) = tempfile('tcp-query-XXXXXX', TMPDIR => 1);

    my $pid = fork // bail_out("$name - fork: $!");
    if ($pid) {
        close $sock;
        $TcpServerPid = $pid;
        return;
    }
    # the child must never return into the test (Test::Builder's END would
    # print into the TAP stream): always _exit
    $InChild = 1;
    $SIG{PIPE} = 'IGNORE';
    eval {
        my $c = $sock->accept or die "accept: $!\n";
        my $buf = '';
        while (1) {
            my $n = sysread $c, my $chunk, 4096;
            last unless $n;
            $buf .= $chunk;
            if (open my $q, '>', "$TcpQueryFile.tmp") {
                print $q $buf;
                close $q;
                rename "$TcpQueryFile.tmp", $TcpQueryFile;  # atomic
            }
            last if length $buf >= $want;
        }
        $reply = $reply->($buf) if ref $reply eq 'CODE';
        for my $r (ref $reply eq 'ARRAY' ? @$reply : ($reply)) {
            syswrite $c, $r if length $r;
        }
        sleep 3600 while defined $block->tcp_no_close;
        close $c;
        1;
    } or warn "$name - fake TCP peer: $@";
    _exit(0);
}

# Stops the fake peer; returns what it received.
sub stop_tcp_server () {
    return undef unless $TcpServerPid;
    kill 'TERM', $TcpServerPid;
    my $until = time + 2;
    while (waitpid($TcpServerPid, WNOHANG) == 0) {
        kill 'KILL', $TcpServerPid if time > $until;
        sleep 0.005;
    }
    undef $TcpServerPid;
    my $q = slurp($TcpQueryFile);
    unlink $TcpQueryFile;
    return $q;
}

# --- cleanup: never leave nginx or a fake peer behind --------------------

sub cleanup () {
    return if $InChild;
    stop_tcp_server();
    stop_nginx('cleanup') unless $NoClean && !$NginxIsChild;
}

END {
    local $?;
    cleanup();
}

1;
