# Copyright (C) nginx-gw authors
package GwMetrics;

# Test helpers for t/metrics-*.t: plain-socket HTTP (so perl code in a test
# block can drive traffic, close connections early or send bytes no client
# library would), a strict parser of both exposition formats that checks
# everything the module promises, and the promtool checks.

use strict;
use warnings;

use Encode ();
use File::Temp ();
use IO::Socket::INET;
use POSIX ();
use Time::HiRes ();

our @EXPORT_OK = qw(server_port servroot http_get http_raw parallel_get
                    parse_exposition sample check_exposition
                    promtool_text promtool_openmetrics master_pid
                    wait_reload worker_pids kill_in);

use Exporter 'import';

sub server_port {
    return $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
}

sub servroot {
    return $ENV{TEST_NGINX_SERVROOT} || 't/servroot';
}

# a connection to nginx; waits up to 30 s for the port to listen, since
# nginx under valgrind starts slowly
sub connect_nginx {
    my ($port) = @_;

    for (1 .. 300) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp',
                                      Timeout => 10);
        return $s if $s;
        die "connect to $port: $!" unless $!{ECONNREFUSED};
        Time::HiRes::sleep(0.1);
    }

    die "nothing listens on port $port";
}

# one request on its own connection; returns (status, \%headers, body)
sub http_get {
    my ($path, %opt) = @_;

    my $method = $opt{method} || 'GET';
    my $port = $opt{port} || server_port();
    my $hdrs = '';

    for my $h (@{ $opt{headers} || [] }) {
        $hdrs .= "$h\r\n";
    }

    return http_raw("$method $path HTTP/1.0\r\nHost: localhost\r\n"
                    . "$hdrs\r\n", port => $port);
}

sub http_raw {
    my ($req, %opt) = @_;

    my $sock = connect_nginx($opt{port} || server_port());

    print $sock $req;

    if (defined $opt{close_after}) {
        Time::HiRes::sleep($opt{close_after});
        close $sock;
        return;
    }

    local $/;
    my $resp = <$sock>;
    close $sock;

    return parse_response($resp);
}

sub parse_response {
    my ($resp) = @_;

    return (0, {}, '') if !defined $resp || $resp eq '';

    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    my @lines = split /\r\n/, $head;
    my ($status) = (shift(@lines) =~ m{^HTTP/\d\.\d (\d{3})});
    my %h;

    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $h{lc $k} = $v;
    }

    return ($status, \%h, $body // '');
}

# n requests, "width" connections open at once: lets the kernel spread them
# over the workers; returns the response bodies
sub parallel_get {
    my ($path, $n, %opt) = @_;

    my $width = $opt{width} || 20;
    my $port = $opt{port} || server_port();
    my @bodies;

    while ($n > 0) {
        my $batch = $n < $width ? $n : $width;
        my @socks;

        for (1 .. $batch) {
            push @socks, connect_nginx($port);
        }

        for my $s (@socks) {
            print $s "GET $path HTTP/1.0\r\nHost: localhost\r\n\r\n";
        }

        for my $s (@socks) {
            local $/;
            my $resp = <$s>;
            close $s;
            my ($status, $h, $body) = parse_response($resp);
            push @bodies, "$status $body";
        }

        $n -= $batch;
    }

    return @bodies;
}

sub master_pid {
    my $file = servroot() . '/logs/nginx.pid';
    open my $fh, '<', $file or die "$file: $!";
    my $pid = <$fh>;
    close $fh;
    chomp $pid;
    return $pid;
}

# the worker pids of a master, from /proc (Linux)
sub worker_pids {
    my ($master) = @_;
    my @pids;

    for my $stat (glob "/proc/[0-9]*/stat") {
        open my $fh, '<', $stat or next;
        my $line = <$fh>;
        close $fh;
        next unless defined $line && $line =~ /^(\d+) \(.*\) \S (\d+)/;
        push @pids, $1 if $2 == $master;
    }

    return sort { $a <=> $b } @pids;
}

# HUP the master, then wait until the workers it had are all gone and new
# ones run: the new configuration serves every later request
sub wait_reload {
    my $master = master_pid();
    my %old = map { $_ => 1 } worker_pids($master);

    kill 'HUP', $master or die "kill HUP $master: $!";

    for (1 .. 600) {
        Time::HiRes::sleep(0.05);
        my @now = worker_pids($master);
        next if !@now || grep { $old{$_} } @now;
        return scalar @now;
    }

    die "nginx did not reload in 30 seconds";
}

# Stops a worker inside a function of the module and SIGKILLs it there:
# gdb attaches to the (only) worker, breaks on $function, the request that
# $trigger sends runs into it, gdb kills the worker, and the master starts
# a new one.  Returns the text gdb printed; dies if the breakpoint was not
# reached or no new worker came up.
sub kill_in {
    my ($function, $trigger) = @_;

    my $master = master_pid();
    my @workers;

    for (1 .. 600) {
        @workers = worker_pids($master);
        last if @workers;
        Time::HiRes::sleep(0.05);
    }

    die "kill_in: one worker expected, not @workers" unless @workers == 1;

    my $dir = servroot() . '/logs';
    my $ready = "$dir/gdb.ready";
    my $out = "$dir/gdb.out";
    unlink $ready;

    my $gdb = fork;
    die "fork: $!" unless defined $gdb;

    if ($gdb == 0) {
        # not the AddressSanitizer runtime make test-asan preloads
        delete @ENV{qw(LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS)};
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or die "$out: $!";
        open STDERR, '>&', \*STDOUT;
        { exec 'gdb', '-nx', '-q', '-batch',
             '-iex', 'set debuginfod enabled off',
             '-iex', 'set auto-load no',
             '-p', $workers[0],
             '-ex', 'set pagination off',
             '-ex', "break $function",
             '-ex', "shell touch $ready",
             '-ex', 'continue',
             '-ex', 'bt 4',
             '-ex', 'kill',
             '-ex', 'quit' };
        POSIX::_exit(127);
    }

    for (1 .. 600) {
        last if -e $ready || waitpid($gdb, POSIX::WNOHANG()) == $gdb;
        Time::HiRes::sleep(0.05);
    }

    # the worker stops in the log phase of this request, the connection
    # closes when it is killed

    local $SIG{ALRM} = sub { die "kill_in: no breakpoint in 30 seconds\n" };
    alarm 30;
    eval { $trigger->() };
    my $err = $@;
    alarm 0;

    if ($err) {
        kill 'KILL', $gdb;
    }

    waitpid($gdb, 0);

    open my $fh, '<', $out or die "$out: $!";
    my $text = do { local $/; <$fh> };
    close $fh;

    die $err if $err;
    die "kill_in: gdb did not stop in $function:\n$text"
        unless $text =~ /Breakpoint 1, .*\b\Q$function\E\b/;

    for (1 .. 600) {
        my @now = worker_pids($master);
        return $text if @now == 1 && $now[0] != $workers[0];
        Time::HiRes::sleep(0.05);
    }

    die "kill_in: no new worker after killing $workers[0]";
}

# --- exposition parsing ---------------------------------------------------

my %text_types = map { $_ => 1 } qw(counter gauge histogram summary untyped);
my %om_types = map { $_ => 1 }
               qw(counter gauge histogram gaugehistogram stateset info
                  summary unknown);

# the label set part of a sample, with escapes undone; dies on bad syntax
sub parse_labels {
    my ($s) = @_;
    my @labels;

    return \@labels if $s eq '';

    while (1) {
        $s =~ s/^([a-zA-Z_][a-zA-Z0-9_]*)="//
            or die "bad label name in {$s}\n";
        my $name = $1;
        my $v = '';

        while (1) {
            die "unterminated label value\n" if $s eq '';
            my $c = substr($s, 0, 1, '');

            last if $c eq '"';
            die "raw newline in label value\n" if $c eq "\n";

            if ($c eq '\\') {
                my $e = substr($s, 0, 1, '');
                if ($e eq 'n') { $v .= "\n" }
                elsif ($e eq '"') { $v .= '"' }
                elsif ($e eq '\\') { $v .= '\\' }
                else { die "undefined escape \\$e in label value\n" }
                next;
            }

            $v .= $c;
        }

        push @labels, [$name, $v];

        last if $s eq '';
        $s =~ s/^,// or die "expected , between labels: $s\n";
        last if $s eq '';
    }

    my %seen;
    for (@labels) {
        die "duplicate label $_->[0]\n" if $seen{$_->[0]}++;
    }

    return \@labels;
}

sub key_of {
    my ($name, $labels) = @_;
    my @l = sort { $a->[0] cmp $b->[0] } @$labels;
    return $name . '{' . join(',', map { "$_->[0]=$_->[1]" } @l) . '}';
}

# the family a sample belongs to and its role, or undef
sub sample_family {
    my ($name, $fams, $format) = @_;

    for my $suffix ('', qw(_total _created _bucket _sum _count _info)) {
        next if $suffix ne '' && substr($name, -length $suffix) ne $suffix;
        my $f = substr($name, 0, length($name) - length $suffix);
        next unless exists $fams->{$f};
        my $type = $fams->{$f}{type} // '';

        if ($format eq 'text') {
            return ($f, 'value') if $suffix eq ''
                                    && $type =~ /^(counter|gauge|untyped)$/;
        } else {
            return ($f, 'value') if $suffix eq '_total' && $type eq 'counter';
            return ($f, 'value') if $suffix eq '' && $type eq 'gauge';
            return ($f, 'value') if $suffix eq '_info' && $type eq 'info';
        }

        return ($f, substr($suffix, 1))
            if $type eq 'histogram' && $suffix =~ /^_(bucket|sum|count)$/;
    }

    return;
}

sub le_ok {
    my ($le, $format) = @_;

    return 1 if $le eq '+Inf';

    # Go's %g: fixed notation from 1e-4 to below 1e+06, else d[.ddd]e+-XX
    my $fixed = qr/^(?:[1-9][0-9]{0,5}(?:\.[0-9]*[1-9])?
                      |0\.0{0,3}(?:[1-9][0-9]*[1-9]|[1-9])
                      |0)$/x;
    my $exp = qr/^[1-9](\.[0-9]*[1-9])?e[-+][0-9]{2,}$/;

    if ($format eq 'om') {
        # and ".0" after an integer
        return 1 if $le =~ $exp;
        return 1 if $le =~ /^(0|[1-9][0-9]{0,5})\.0$/;
        return ($le =~ $fixed && $le =~ /\./) ? 1 : 0;
    }

    return ($le =~ $fixed || $le =~ $exp) ? 1 : 0;
}

# Parses an exposition ('text' for 0.0.4, 'om' for OpenMetrics 1.0) and
# checks it: metadata once per family and before its samples, families and
# label sets never interleaved, counter/histogram naming per format, label
# syntax and escapes, UTF-8, histogram buckets ordered, cumulative, +Inf
# equal to _count, canonical "le".  Returns { samples => {key => value},
# series => [[name, {labels}, value], ...] in order, errors => [...],
# families => [names in order], meta => {...}, histograms => {...} }.
sub parse_exposition {
    my ($body, $format) = @_;

    my (@err, %samples, %fams, @order, %hist, @series);
    my ($cur, %done, $eof, %seen_set, $cur_set);

    push @err, "empty body" if $body eq '';
    push @err, "body does not end with a newline"
        if $body ne '' && $body !~ /\n\z/;
    push @err, "carriage return in body" if $body =~ /\r/;

    my $copy = $body;
    eval { Encode::decode('UTF-8', $copy, Encode::FB_CROAK); 1 }
        or push @err, "body is not valid UTF-8";

    my @lines = split /\n/, $body, -1;
    pop @lines if @lines && $lines[-1] eq '';

    my $ln = 0;

    for my $line (@lines) {
        $ln++;

        if ($eof) {
            push @err, "line $ln after # EOF";
            last;
        }

        if ($line eq '# EOF') {
            if ($format eq 'om') { $eof = 1; next; }
            push @err, "line $ln: # EOF in the text format";
            next;
        }

        if ($line =~ /^\#[ ](HELP|TYPE|UNIT)[ ]([a-zA-Z_:][a-zA-Z0-9_:]*)
                      (?:[ ](.*))?$/xs)
        {
            my ($kw, $name, $rest) = ($1, $2, $3 // '');

            if (!defined $cur || $cur ne $name) {
                if (exists $fams{$name}) {
                    push @err, "line $ln: family $name split";
                }
                $done{$cur} = 1 if defined $cur;
                $cur = $name;
                $cur_set = undef;
                if (!exists $fams{$name}) {
                    $fams{$name} = { samples => 0 };
                    push @order, $name;
                }
            }

            my $f = $fams{$name};

            push @err, "line $ln: second $kw for $name" if $f->{lc $kw};
            push @err, "line $ln: $kw after samples of $name"
                if $f->{samples};
            $f->{lc $kw} = $rest;

            if ($kw eq 'TYPE') {
                my $ok = $format eq 'om' ? $om_types{$rest}
                                         : $text_types{$rest};
                push @err, "line $ln: bad type '$rest'" unless $ok;
                $f->{type} = $rest;
                push @err, "line $ln: TYPE after HELP or UNIT (OpenMetrics)"
                    if $format eq 'om' && ($f->{help} || $f->{unit});
            }

            if ($kw eq 'UNIT') {
                push @err, "line $ln: UNIT in the text format"
                    if $format ne 'om';
                push @err, "line $ln: $name does not end in _$rest"
                    if $name !~ /_\Q$rest\E$/;
                push @err, "line $ln: UNIT after HELP" if $f->{help};
            }

            if ($kw eq 'HELP' && $rest =~ /\\(?![n\\"])/) {
                push @err, "line $ln: bad escape in HELP";
            }

            next;
        }

        if ($line =~ /^#/) {
            push @err, "line $ln: unexpected comment line";
            next;
        }

        my ($name, $lab, $value) =
            $line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/s
            or do { push @err, "line $ln: bad sample line: $line"; next };

        my $labels = eval { parse_labels($lab // '') };
        if (!$labels) {
            chomp(my $e = $@);
            push @err, "line $ln: $e";
            next;
        }

        my ($fam, $role) = sample_family($name, \%fams, $format);

        if (!defined $fam) {
            push @err, "line $ln: $name belongs to no declared family";
            next;
        }

        if ($fam ne ($cur // '')) {
            push @err, "line $ln: $name outside its family block";
            next;
        }

        $fams{$fam}{samples}++;

        if ($format eq 'om') {
            push @err, "line $ln: bad number $value"
                unless $value =~ /^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/
                       || $value =~ /^[-+]?Inf$|^NaN$/;
        } else {
            push @err, "line $ln: bad number $value"
                unless $value =~ /^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/
                       || $value =~ /^[-+]?Inf$|^NaN$/;
        }

        my $key = key_of($name, $labels);
        push @err, "line $ln: duplicate sample $key" if exists $samples{$key};
        $samples{$key} = $value;
        push @series, [$name, { map { $_->[0] => $_->[1] } @$labels }, $value];

        my @rest = grep { $_->[0] ne 'le' } @$labels;
        my $set = key_of($fam, \@rest);

        if (!defined $cur_set || $cur_set ne $set) {
            push @err, "line $ln: label set $set interleaved"
                if $seen_set{$set}++;
            $cur_set = $set;
        }

        if (($fams{$fam}{type} // '') eq 'histogram') {
            my $h = $hist{$set} //= { buckets => [], line => $ln };

            if ($role eq 'bucket') {
                my ($le) = map { $_->[1] } grep { $_->[0] eq 'le' } @$labels;
                if (!defined $le) {
                    push @err, "line $ln: bucket without le";
                    next;
                }
                push @err, "line $ln: le \"$le\" not canonical"
                    unless le_ok($le, $format);
                push @err, "line $ln: bucket after _sum or _count"
                    if defined $h->{sum} || defined $h->{count};
                push @{ $h->{buckets} }, [$le, $value];
            } else {
                push @err, "line $ln: second _$role" if defined $h->{$role};
                $h->{$role} = $value;
            }
        }
    }

    push @err, "no # EOF at the end" if $format eq 'om' && !$eof;

    for my $set (sort keys %hist) {
        my $h = $hist{$set};
        my @b = @{ $h->{buckets} };

        if (!@b || $b[-1][0] ne '+Inf') {
            push @err, "$set: last bucket is not +Inf";
            next;
        }

        for my $i (1 .. $#b) {
            my ($pl, $pv) = @{ $b[$i - 1] };
            my ($l, $v) = @{ $b[$i] };
            my $nl = $l eq '+Inf' ? 9**9**9 : $l;
            push @err, "$set: le $l not above $pl" unless $nl > $pl;
            push @err, "$set: bucket le=$l ($v) below le=$pl ($pv)"
                unless $v >= $pv;
        }

        push @err, "$set: no _count" unless defined $h->{count};
        push @err, "$set: no _sum" unless defined $h->{sum};
        push @err, "$set: _count $h->{count} != +Inf bucket $b[-1][1]"
            if defined $h->{count} && $h->{count} != $b[-1][1];
    }

    for my $f (@order) {
        push @err, "family $f has no TYPE" unless $fams{$f}{type};
        push @err, "family $f has no HELP" unless defined $fams{$f}{help};
    }

    return { samples => \%samples, errors => \@err, families => \@order,
             meta => \%fams, histograms => \%hist, series => \@series };
}

# a sample value by name and labels, undef when absent
sub sample {
    my ($parsed, $name, %labels) = @_;
    my @l = map { [$_, $labels{$_}] } keys %labels;
    return $parsed->{samples}{ key_of($name, \@l) };
}

sub run_promtool {
    my ($input, @args) = @_;

    my $tmp = File::Temp->new(SUFFIX => '.prom');
    binmode $tmp;
    print $tmp $input;
    close $tmp;

    my $out = `promtool @args < $tmp 2>&1`;
    return ($? >> 8, $out);
}

# promtool check metrics: Prometheus' own parser and linter (text 0.0.4)
sub promtool_text {
    my ($body) = @_;
    my ($rc, $out) = run_promtool($body, 'check', 'metrics');
    return $rc == 0 ? 'ok' : "promtool check metrics ($rc): $out";
}

# Prometheus' OpenMetrics parser: promtool's backfill reads OpenMetrics and
# wants timestamps, so every sample gets one
sub promtool_openmetrics {
    my ($body) = @_;

    my $stamped = join '', map { /^#/ ? "$_\n" : "$_ 1\n" }
                           split /\n/, $body;

    my $tmp = File::Temp->new(SUFFIX => '.om');
    binmode $tmp;
    print $tmp $stamped;
    close $tmp;

    my $dir = File::Temp->newdir();
    my $out = `promtool tsdb create-blocks-from openmetrics $tmp $dir 2>&1`;
    my $rc = $? >> 8;

    return 'ok' if $rc == 0 && $out !~ /error|invalid|expected/i;
    return "promtool openmetrics ($rc): $out";
}

# --- a headless Chromium driven over the DevTools protocol ----------------
#
# Debian's chromium with --remote-debugging-pipe: commands go to its fd 3
# and replies and events come from its fd 4, as JSON messages ending in a
# NUL byte.  One page; every console message, exception, log entry and
# dialog of that page is kept, so a test can require that there were none.

package GwMetrics::Browser;

use IO::Select;
use JSON::PP ();

my $cdp_json = JSON::PP->new->utf8->canonical;

sub start {
    my ($class, %opt) = @_;

    my $dir = File::Temp->newdir("gw-chromium-XXXXXX", TMPDIR => 1);
    my $log = GwMetrics::servroot() . "/logs";
    $log = $opt{log} || (-d $log ? "$log/chromium.log" : "/dev/null");

    pipe(my $cmd_r, my $cmd_w) or die "pipe: $!";
    pipe(my $evt_r, my $evt_w) or die "pipe: $!";

    my $pid = fork;
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        # through fds above 4, so that neither end overwrites the other
        my $in = POSIX::dup(fileno $cmd_r);
        my $out = POSIX::dup(fileno $evt_w);
        $in = POSIX::dup($in) while $in < 5;
        $out = POSIX::dup($out) while $out < 5;
        # dup2() leaves the new descriptors open across exec
        POSIX::dup2($in, 3);
        POSIX::dup2($out, 4);

        delete @ENV{qw(LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS)};
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $log;
        open STDERR, '>&', \*STDOUT;

        { exec 'chromium', '--headless', '--no-sandbox', '--disable-gpu',
             '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update',
             '--disable-sync', '--hide-scrollbars',
             "--user-data-dir=$dir", '--remote-debugging-pipe',
             '--window-size=' . ($opt{size} || '1280,900'), 'about:blank' };
        POSIX::_exit(127);
    }

    close $cmd_r;
    close $evt_w;

    my $self = bless { pid => $pid, dir => $dir, to => $cmd_w,
                       from => $evt_r, buf => '', id => 0, queue => [],
                       problems => [] }, $class;

    my $t = $self->call('Target.createTarget', { url => 'about:blank' });
    my $a = $self->call('Target.attachToTarget',
                        { targetId => $t->{targetId},
                          flatten => JSON::PP::true });

    $self->{session} = $a->{sessionId};

    $self->call($_) for qw(Page.enable Runtime.enable Log.enable);

    return $self;
}

sub message {
    my ($self, $deadline) = @_;

    while ($self->{buf} !~ /\0/) {
        my $left = $deadline - Time::HiRes::time();
        return undef if $left <= 0;
        return undef unless IO::Select->new($self->{from})->can_read($left);
        my $n = sysread $self->{from}, $self->{buf}, 1 << 20,
                        length $self->{buf};
        die "chromium exited (see logs/chromium.log)\n" unless $n;
    }

    $self->{buf} =~ s/^(.*?)\0//s;
    my $m = $cdp_json->decode($1);

    # what a clean page never produces
    my ($method, $p) = ($m->{method} // '', $m->{params});

    if ($method eq 'Runtime.exceptionThrown') {
        my $d = $p->{exceptionDetails};
        push @{ $self->{problems} }, "exception: "
            . ($d->{exception}{description} // $d->{text});

    } elsif ($method eq 'Runtime.consoleAPICalled'
             && $p->{type} =~ /^(error|warning|assert)$/)
    {
        push @{ $self->{problems} }, "console.$p->{type}: "
            . join ' ', map { $_->{value} // $_->{description} // '' }
                            @{ $p->{args} };

    } elsif ($method eq 'Log.entryAdded'
             && $p->{entry}{level} =~ /^(error|warning)$/)
    {
        push @{ $self->{problems} },
             "log $p->{entry}{level} ($p->{entry}{source}): "
             . $p->{entry}{text};

    } elsif ($method eq 'Page.javascriptDialogOpening') {
        push @{ $self->{problems} }, "dialog: $p->{message}";
        $self->send('Page.handleJavaScriptDialog',
                    { accept => JSON::PP::false });
    }

    return $m;
}

sub send {
    my ($self, $method, $params) = @_;

    my $msg = { id => ++$self->{id}, method => $method,
                params => $params || {} };
    $msg->{sessionId} = $self->{session}
        if $self->{session} && $method !~ /^(Target|Browser)\./;

    my $data = $cdp_json->encode($msg) . "\0";

    while (length $data) {
        my $n = syswrite $self->{to}, $data;
        die "write to chromium: $!" unless defined $n;
        substr($data, 0, $n, '');
    }

    return $msg->{id};
}

sub call {
    my ($self, $method, $params) = @_;

    my $id = $self->send($method, $params);
    my $deadline = Time::HiRes::time() + 20;

    while (1) {
        my $m = $self->message($deadline)
            or die "chromium: no answer to $method in 20 seconds\n";
        next unless defined $m->{id} && $m->{id} == $id;
        die "chromium: $method: $m->{error}{message}\n" if $m->{error};
        return $m->{result};
    }
}

# the value of a JavaScript expression in the page (promises awaited)
sub eval {
    my ($self, $js) = @_;

    my $r = $self->call('Runtime.evaluate',
                        { expression => $js, returnByValue => JSON::PP::true,
                          awaitPromise => JSON::PP::true });

    die "page: $r->{exceptionDetails}{text}: "
        . ($r->{exceptionDetails}{exception}{description} // '') . "\n"
        if $r->{exceptionDetails};

    return $r->{result}{value};
}

# waits until the expression is true in the page; its value, or undef
sub wait_for {
    my ($self, $js, $timeout) = @_;

    my $deadline = Time::HiRes::time() + ($timeout || 10);

    while (Time::HiRes::time() < $deadline) {
        my $v = $self->eval($js);
        return $v if $v;
        $self->message(Time::HiRes::time() + 0.05);
    }

    return undef;
}

sub navigate {
    my ($self, $url) = @_;
    $self->call('Page.navigate', { url => $url });
}

sub screenshot {
    my ($self, $file) = @_;

    require MIME::Base64;

    my $r = $self->call('Page.captureScreenshot',
                        { format => 'png',
                          captureBeyondViewport => JSON::PP::true });

    open my $fh, '>:raw', $file or die "$file: $!";
    print $fh MIME::Base64::decode_base64($r->{data});
    close $fh;
}

sub problems {
    my ($self) = @_;

    # events still unread
    1 while $self->message(Time::HiRes::time() + 0.1);

    return @{ $self->{problems} };
}

sub stop {
    my ($self) = @_;

    return unless $self->{pid};

    eval { $self->send('Browser.close') };

    for (1 .. 100) {
        last if waitpid($self->{pid}, POSIX::WNOHANG()) == $self->{pid};
        Time::HiRes::sleep(0.05);
        kill 'KILL', $self->{pid} if $_ == 60;
    }

    waitpid($self->{pid}, 0) if kill 0, $self->{pid};
    delete $self->{pid};
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $@);
    $self->stop;
}

package GwMetrics;

# every check on one body: the strict parser and promtool
sub check_exposition {
    my ($body, $format) = @_;

    my $p = parse_exposition($body, $format);
    my @err = @{ $p->{errors} };

    my $pt = $format eq 'om' ? promtool_openmetrics($body)
                             : promtool_text($body);
    push @err, $pt if $pt ne 'ok';

    return (\@err, $p);
}

1;
