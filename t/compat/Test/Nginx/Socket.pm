# Copyright (C) nginx-gw authors
package Test::Nginx::Socket;

# nginx-gw's compact, compatible Test::Nginx::Socket: the block format, the
# HTTP client and the assertions for the subset of upstream Test::Nginx
# listed in t/compat/README.  Used only when the real Test::Nginx is not
# installed (t/run-suite puts t/compat on PERL5LIB then).
#
# NB: "use Test::Base -Base" runs Spiffy's source filter over this file,
# which adds "my $self = shift;" to every "sub name {" - so every named sub
# below has a prototype, as upstream's do.

use Test::Base -Base;

our $VERSION = '0.33_nginx_gw';

use POSIX qw(EAGAIN EWOULDBLOCK EINTR);
use Time::HiRes qw(sleep time);
use IO::Select ();
use IO::Socket::INET ();
use List::Util qw(shuffle);
use Scalar::Util qw(looks_like_number);
use Test::Nginx::Util qw(:DEFAULT :internal);

# Sections this runner implements.  Any other section fails the block:
# an assertion that is silently skipped is a defect.
my %Implemented = map { $_ => 1 } qw(
    main_config http_config config request pipelined_requests raw_request
    more_headers error_code response_body response_body_like
    response_body_unlike response_body_filters response_headers
    response_headers_like raw_response_headers_like
    raw_response_headers_unlike error_log no_error_log grep_error_log
    grep_error_log_out access_log no_access_log must_die user_files init
    wait timeout abort tcp_listen tcp_reply tcp_no_close tcp_query
    no_check_leak log_level ONLY SKIP LAST
);

# Sections upstream does NOT run through $TEST_NGINX_* expansion: a
# "$TEST_NGINX_X" there is sent or matched literally, which is never what
# the author meant, so we fail instead of passing or failing vacuously.
my @Unexpanded = qw(
    request raw_request more_headers error_log no_error_log access_log
    no_access_log response_headers response_headers_like response_body_like
    response_body_unlike raw_response_headers_like
    raw_response_headers_unlike grep_error_log tcp_reply tcp_query
);

our @EXPORT = (@Test::Nginx::Util::EXPORT, qw(run_tests is_str));

# Upstream functions that are not implemented die loudly when called.
for my $f (qw(use_hup check_accum_error_log server_name server_addr
              config_preamble no_nginx_manager timeout
              add_response_body_check add_cleanup_handler
              add_test_cleanup_handler master_process_enabled
              server_port_for_client set_http_config_filter run_test))
{
    no strict 'refs';
    *{$f} = sub { die "Test::Nginx::Socket::$f() is not implemented by "
                      . "the nginx-gw compat runner (t/compat/README)\n" };
    push @EXPORT, $f;
}

our $RandPorts = {};

sub run_tests () {
    srand($$ ^ int(time * 1000));
    nginx_version();
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;
    local $SIG{PIPE} = 'IGNORE';
    local $SIG{INT} = local $SIG{TERM} = sub {
        cleanup();
        exit 130;
    };
    # a stale nginx from an earlier run (TEST_NGINX_NO_CLEAN, a crash)
    stop_nginx('startup');

    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $NoShuffle;
    for my $block (@blocks) {
        $_->($block) for @BlockPreprocessors;
        $block->set_value(name => "$0 " . $block->name);
        my $t0 = time;
        run_block($block);
        verbose(sprintf "%s - %.3fs", $block->name, time - $t0);
    }
    cleanup();
}

# Unknown or unsupported sections, and $TEST_NGINX_* left literal.
sub block_errors ($) {
    my $block = shift;
    my @err;
    for my $s (sort keys %$block) {
        next if $s =~ /^_/ || $s =~ /^(?:name|description|seq_num|
                  is_filtered|blocks_object|original_values)$/x;
        push @err, "section --- $s is unknown or not implemented by the "
                   . "compat runner (t/compat/README)" unless $Implemented{$s};
    }
    for my $s (@Unexpanded) {
        my $v = $block->$s;
        for my $x (ref $v eq 'ARRAY' ? @$v : ($v)) {
            next if !defined $x || ref $x || $x !~ /(\$TEST_NGINX_\w+)/;
            push @err, "--- $s contains $1, which Test::Nginx does not "
                       . "expand in that section (use \"--- $s eval\")";
        }
    }
    push @err, "no --- config section (an empty one is fine; upstream "
               . "would reuse the previous block's nginx)"
        unless defined $block->config;
    return @err;
}

sub run_block ($) {
    my $block = shift;
    my $name = $block->name;

    if (my @err = block_errors($block)) {
        Test::More::fail("$name - $_") for @err;
        return;
    }

    $RandPorts = {};
    my $config = expand_env($block->config, $name, $RandPorts);
    stop_nginx($name);
    setup_server_root();
    write_user_files($block, $RandPorts);
    write_config($block, $config, $RandPorts);

    if (defined(my $must_die = $block->must_die)) {
        for my $rep (0 .. $RepeatEach - 1) {
            my ($status) = start_nginx($name, 1);
            if (looks_like_number($must_die)) {
                Test::More::is($status >> 8, $must_die,
                               "$name - die with the expected exit code");
            } else {
                Test::More::isnt($status, 0, "$name - die as expected");
            }
            check_error_log($block, $rep);
            stop_nginx($name) if $status == 0;
        }
        return;
    }

    my ($status, $msg) = start_nginx($name, 0);
    if ($status != 0) {
        Test::More::fail("$name - nginx failed to start");
        Test::More::diag($msg);
        stop_nginx($name);
        return;
    }

    if (defined(my $init = $block->init)) {
        eval "package main; $init; 1"
            or bail_out("$name - init failed: $@");
    }

    for my $rep (0 .. $RepeatEach - 1) {
        write_user_files($block, $RandPorts) if $rep;
        start_tcp_server($block, $RandPorts)
            if defined $block->tcp_listen;
        run_requests($block, $rep);
        if (defined $block->tcp_listen) {
            my $q = stop_tcp_server() // '';
            is_str($q, $block->tcp_query, "$name - tcp_query ok")
                if defined $block->tcp_query;
        }
    }

    finish_block($block);
}

# the start of each kind of valgrind error report (with -q it prints
# nothing else but warnings)
my $ValgrindError = do {
    my $kinds = join '|', map { quotemeta } 'Invalid ', 'Conditional jump',
        'Use of uninitialised', 'Mismatched free', 'Syscall param',
        'Jump to the invalid', 'Source and destination overlap',
        'Process terminating', 'Argument \'size\' of function';
    qr/^==\d+== (?:$kinds|.* are definitely lost in loss record)/m;
};

# Stops nginx at the end of the block and reports what upstream would only
# notice later or not at all: a crashed nginx, valgrind errors.
sub finish_block ($) {
    my $block = shift;
    my $name = $block->name;
    if (!alive($NginxPid)) {
        my @log = split /^/, slurp($ErrLogFile);
        Test::More::fail("$name - nginx is still running at the end of the "
                         . "block");
        Test::More::diag("nginx $NginxPid is gone (crashed?); error.log "
                         . "ends:\n", @log[($#log > 9 ? -10 : 0) .. -1]);
    }
    # TEST_NGINX_NO_CLEAN: leave it running; the next block stops it
    return if $NoClean && !$UseValgrind;
    my $st = stop_nginx($name);
    for my $line (@{ error_log_lines(1) }) {
        if ($line =~ /exited on signal|\bAssertion .*?failed\b/) {
            chomp $line;
            Test::More::fail("$name - on shutdown: $line");
        }
    }
    # A failure only when valgrind found something, so that plans agree
    # with upstream's (which only prints valgrind's report).
    if ($UseValgrind && $NginxIsChild) {
        my $log = slurp($ValgrindLog);
        if (defined $st && $st >> 8 == 99 || $log =~ $ValgrindError) {
            Test::More::fail("$name - valgrind reported errors");
            my @l = split /^/, $log;
            splice @l, 200, @l, "... (see $ValgrindLog)\n" if @l > 200;
            Test::More::diag(@l);
        }
    }
}

# --- requests ----------------------------------------------------------------

# "key: value" lines (# comments skipped) => CRLF header block; chunked?
sub parse_more_headers ($) {
    my $in = shift;
    my ($out, $chunked) = ('', 0);
    for my $h (split /\n+/, $in) {
        next if $h =~ /^\s*#/;
        my ($k, $v) = split /:\s*/, $h, 2;
        $v //= '';
        $chunked = 1 if lc $k eq 'transfer-encoding' && $v eq 'chunked';
        $out .= "$k: $v\r\n";
    }
    return ($out, $chunked);
}

# "METHOD [uri [version]]\n[body]" => raw HTTP request, as upstream builds
# it: HTTP/1.1 by default, then Host, Connection, more_headers and a
# Content-Length for a (whitespace-trimmed) body.
sub build_request ($$$$) {
    my ($name, $req, $more, $conn) = @_;
    $req //= '';
    my ($first, $body) = split /\n/, $req, 2;
    $first //= '';
    $body //= '';
    bail_out("$name - Request line should be non-empty")
        unless length $first;
    my ($meth, $uri, $ver, $extra) = split ' ', $first;
    bail_out("$name - Request line is not valid. Should be "
             . "'meth [url [version]]' but got \"$first\".")
        if defined $extra || !defined $meth;
    $uri //= '/';
    $ver //= 'HTTP/1.1';
    my ($hdr, $chunked) = parse_more_headers($more);
    if (!$chunked && $body ne '' && $hdr !~ /(?:^|\n)Content-Length:/) {
        $body =~ s/^\s+|\s+$//gs;
        $hdr .= "Content-Length: " . length($body) . "\r\n";
    }
    my $head = "$meth $uri $ver\r\n";
    $head .= "Host: localhost\r\n" if $hdr !~ /(?:^|\n)Host:/i;
    $head .= "Connection: $conn\r\n" if $hdr !~ /(?:^|\n)Connection/i;
    return "$head$hdr\r\n$body";
}

# => ([[packets], number of responses expected], ...), need_array
sub requests_of ($) {
    my $block = shift;
    my $name = $block->name;
    my $more = $block->more_headers // '';
    my $more_of = sub {
        my $i = shift;
        return $more unless ref $more eq 'ARRAY';
        return $more->[$i] // bail_out("$name - --- more_headers lacks data "
                                        . "for request $i");
    };

    if (defined(my $raw = $block->raw_request)) {
        return ([[[ref $raw eq 'ARRAY' ? @$raw : ($raw)], 1]], 0);
    }
    if (defined(my $p = $block->pipelined_requests)) {
        bail_out("$name - invalid entries in --- pipelined_requests")
            unless ref $p eq 'ARRAY';
        my $all = '';
        for my $i (0 .. $#$p) {
            my $r = expand_env($p->[$i], $name, $RandPorts);
            $all .= build_request($name, $r, $more_of->($i),
                                  $i == $#$p ? 'close' : 'keep-alive');
        }
        return ([[[$all], scalar @$p]], 1);
    }
    my $req = $block->request;
    bail_out("$name - no --- request section") unless defined $req;
    my @reqs = ref $req eq 'ARRAY' ? @$req : ($req);
    bail_out("$name - request empty") unless @reqs;
    my @out;
    for my $i (0 .. $#reqs) {
        my $r = $reqs[$i];
        bail_out("$name - request packet arrays are not supported by the "
                 . "compat runner") if ref $r;
        # leading comment lines and blank space are dropped, as upstream
        1 while $r =~ s/^\s*#[^\n]+\s+|^\s+//gs;
        push @out, [[build_request($name, $r, $more_of->($i), 'close')], 1];
    }
    return (\@out, @reqs > 1 ? 1 : 0);
}

# Sends the bytes (a list of packets), reads until the server closes.
# $timeout is the longest silence between two I/O events, as upstream.
sub send_request ($$$) {
    my ($block, $packets, $timeout) = @_;
    my $name = $block->name;
    my $sock;
    for my $try (1 .. 5) {
        $sock = IO::Socket::INET->new(PeerAddr => $ServerAddr,
                    PeerPort => $ServerPort, Proto => 'tcp',
                    Timeout => $timeout);
        last if $sock || !alive($NginxPid);
        sleep 0.05 * $try;
    }
    if (!$sock) {
        my $err = $IO::Socket::errstr || $@ || $!;
        Test::More::fail("$name - Can't connect to $ServerAddr:$ServerPort: "
                         . $err);
        return '';
    }
    $sock->blocking(0);
    my @out = @$packets;
    my ($resp, $wbuf) = ('', shift(@out) // '');
    my $sel = IO::Select->new($sock);
    # a hard stop too, so that a trickling server cannot hang the suite
    my $deadline = time + 10 * $timeout;
    while (1) {
        my ($r, $w) = IO::Select->select($sel, length $wbuf ? $sel : undef,
                                         undef, $timeout);
        if (!$r && !$w || time > $deadline) {
            next if !$r && !$w && $! == EINTR && time < $deadline;
            Test::More::fail("ERROR: client socket timed out - $name")
                unless defined $block->abort;
            last;
        }
        if ($w && @$w) {
            my $n = syswrite $sock, $wbuf;
            if (!defined $n && $! != EAGAIN && $! != EWOULDBLOCK) {
                warn "WARNING: $name - write failed: $!\n";
                last;
            }
            substr($wbuf, 0, $n) = '' if $n;
            $wbuf = shift(@out) // '' if !length $wbuf;
        }
        if ($r && @$r) {
            my $n = sysread $sock, my $buf, 65536;
            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK;
                warn "WARNING: $name - HTTP response read failure: $!\n";
                last;
            }
            last if $n == 0;
            $resp .= $buf;
        }
    }
    close $sock;
    return $resp;
}

# --- responses -------------------------------------------------------------

# One response off the front of $raw: ({code, headers, body}, raw header
# block, leftover bytes).  Body framing: chunked, Content-Length, or the
# rest of the stream (HEAD: none).
sub parse_response ($$$) {
    my ($name, $raw, $head) = @_;
    my %res = (code => undef, headers => [], body => '');
    my $raw_headers = $raw =~ /^(.*?\r\n)\r\n/s ? $1 : '';
    my ($top, $body) = split /\r?\n\r?\n/, $raw, 2;
    $body //= '';
    my ($status, @lines) = split /\r?\n/, $top // '';
    if (defined $status
        && $status =~ m{^(?:HTTP/\d(?:\.\d)?\s+)?(\d+)(?:\s|$)})
    {
        $res{code} = $1;
    }
    for my $l (@lines) {
        push @{ $res{headers} }, [$1, $2] if $l =~ /^([^\s:]+)[ \t]*: ?(.*)$/;
    }
    my $left;
    my $code = $res{code} // 0;
    if ($head || $code == 304 || $code == 101) {
        $left = $body;
    } elsif ((header_of(\%res, 'Transfer-Encoding') // '') eq 'chunked') {
        my $decoded = '';
        # size line, data, CRLF; the last chunk, trailers, CRLF
        while ($body =~ /\G[ \t]*([0-9A-Fa-f]+)[^\r\n]*\r\n/gc) {
            my ($len, $at) = (hex $1, pos $body);
            if ($len == 0) {
                1 while $body =~ /\G[^\r\n]+\r\n/gc;
                last unless $body =~ /\G\r\n/gc;
                $left = substr $body, pos $body;
                $res{body} = $decoded;
                return (\%res, $raw_headers, $left);
            }
            last if substr($body, $at + $len, 2) ne "\r\n";
            $decoded .= substr $body, $at, $len;
            pos($body) = $at + $len + 2;
        }
        Test::More::fail("$name - invalid chunked body received: "
                         . substr($body, pos($body) // 0, 60));
        return undef;
    } elsif (defined(my $len = header_of(\%res, 'Content-Length'))) {
        if ($len =~ /^\d+$/ && length $body > $len) {
            $left = substr $body, $len;
            $body = substr $body, 0, $len;
        } elsif ($len =~ /^\d+$/ && length $body < $len) {
            warn "WARNING: $name - response body truncated: $len expected, "
                 . "but got " . length($body) . "\n";
        }
    }
    $res{body} = $body;
    return (\%res, $raw_headers, $left);
}

# case-insensitive; repeated headers joined by ", " (like HTTP::Headers)
sub header_of ($$) {
    my ($res, $key) = @_;
    my @v = map { $_->[1] } grep { lc $_->[0] eq lc $key } @{ $res->{headers} };
    return @v ? join(', ', @v) : undef;
}

sub run_requests ($$) {
    my ($block, $rep) = @_;
    my $name = $block->name;
    my $timeout = parse_time($block->timeout) // $Timeout;
    my ($reqs, $need_array) = requests_of($block);
    my $nresp = 0;
    $nresp += $_->[1] for @$reqs;
    my $idx = 0;

    for my $r (@$reqs) {
        my ($packets, $n) = @$r;
        my $head = join('', @$packets) =~ /^\s*HEAD\s/;
        my $raw = send_request($block, $packets, $timeout);
        for (1 .. $n) {
            my ($res, $raw_headers, $left) =
                parse_response($name, $raw // '', $head);
            $raw = $left;
            check_response($block, $res, $raw_headers, $idx, $rep,
                           $need_array);
            if (++$idx < $nresp) {
                sleep $block->wait if $block->wait;
                check_logs($block, $rep);
            }
        }
        if (defined $raw && length $raw) {
            (my $l = $raw) =~ s/([^\x20-\x7e])/sprintf '\x{%02x}', ord $1/ge;
            warn "WARNING: $name - unexpected extra bytes after last "
                 . "response: \"$l\"\n";
        }
    }
    sleep $block->wait if $block->wait;
    check_logs($block, $rep);
}

# expected value for request $idx: arrays index by request
sub indexed ($$$$) {
    my ($name, $v, $idx, $need_array) = @_;
    return $v->[$idx] if ref $v eq 'ARRAY';
    bail_out("$name - You asked for many requests, the expected results "
             . "should be arrays as well.") if $need_array && defined $v;
    return $v;
}

sub port_vars ($) {
    my $s = shift;
    return $s if !defined $s || ref $s;
    $s =~ s/\$ServerPort(?:ForClient)?\b/$ServerPort/g;
    return $s;
}

# "Name: value" and "!Name" lines => ordered [name, value|undef] (the last
# line for a name wins, as with upstream's hash)
sub header_specs ($) {
    my $text = shift // '';
    my (@order, %val);
    for my $l (split /\n/, $text) {
        $l =~ s/^\s+|\s+$//g;
        next unless length $l;
        my ($k, $v) = $l =~ s/^!\s*// ? ($l, undef) : split /\s*:\s*/, $l, 2;
        push @order, $k unless exists $val{$k};
        $val{$k} = $v;      # "Name" without a colon = absent, as upstream
    }
    return map { [$_, $val{$_}] } @order;
}

sub check_response ($$$$$$) {
    my ($block, $res, $raw_headers, $idx, $rep, $need_array) = @_;
    my $name = $block->name;
    $raw_headers //= '';

    my $code = indexed($name, $block->error_code, $idx, $need_array);
    Test::More::is($res ? $res->{code} // '' : '', $code // 200,
                   "$name - status code ok");

    if (defined $block->response_headers) {
        my $spec = indexed($name, $block->response_headers, $idx,
                           $need_array);
        for my $h (header_specs($spec)) {
            my ($k, $v) = @$h;
            if (!defined $v) {
                # upstream matches the raw header block case-sensitively;
                # we do it case-insensitively (stricter)
                Test::More::unlike($raw_headers, qr/^\s*\Q$k\E\s*:/mi,
                    "$name - header $k not present in the raw headers");
                next;
            }
            my $got = $res ? header_of($res, $k) // '' : '';
            Test::More::is($got, port_vars($v), "$name - header $k ok");
        }
    }
    if (defined $block->response_headers_like) {
        my $spec = indexed($name, $block->response_headers_like, $idx,
                           $need_array);
        for my $h (header_specs($spec)) {
            my ($k, $v) = @$h;
            $v //= '';
            my $got = $res ? header_of($res, $k) // '' : '';
            Test::More::like($got, qr/^$v$/, "$name - header $k like ok");
        }
    }

    # the raw header block (status line included) against a pattern
    for my $type (qw(like unlike)) {
        my $pats = $block->${\"raw_response_headers_$type"};
        next unless defined $pats;
        my $pat = indexed($name, $pats, $idx, $need_array);
        no strict 'refs';
        &{"Test::More::$type"}($raw_headers, qr/$pat/s,
                               "$name - raw resp headers $type");
    }

    my $body = $res ? apply_body_filters($block, $res->{body}, $idx) : undef;

    if (defined $block->response_body) {
        my $exp = indexed($name, $block->response_body, $idx, $need_array);
        if (ref $exp) {
            Test::More::like($body, $exp, "$name - response_body - like "
                             . "(repeated req $rep, req $idx)");
        } else {
            $exp = expand_env(port_vars($exp), $name, $RandPorts);
            is_str($body, $exp, "$name - response_body - response is "
                   . "expected (repeated req $rep, req $idx)");
        }
    }
    for my $type (qw(like unlike)) {
        my $pats = $block->${\"response_body_$type"};
        next unless defined $pats;
        my $pat = port_vars(indexed($name, $pats, $idx, $need_array));
        (my $sum = $body // '') =~ s/\s+/ /g;
        $sum =~ s/^ | $//g;
        no strict 'refs';
        &{"Test::More::$type"}($body, qr/$pat/s, "$name - response_body_"
                               . "$type - response is expected ($sum)");
    }
}

# --- response_body_filters: names (uc lc ucfirst lcfirst length md5_hex
# sha1_hex) or code refs, a list of them, or one list per request.
sub apply_body_filters ($$$) {
    my ($block, $body, $idx) = @_;
    my $f = $block->response_body_filters;
    return $body unless defined $f;
    my $name = $block->name;
    $f = [split ' ', $f] unless ref $f;
    $f = [$f] unless ref $f eq 'ARRAY';
    if (@$f && ref $f->[0] eq 'ARRAY') {
        $f = $f->[$idx] // bail_out("$name - no response_body_filters for "
                                    . "request $idx");
    }
    for my $one (@$f) {
        if (ref $one eq 'CODE') { $body = $one->($body); next }
        bail_out("$name - bad response_body_filters value") if ref $one;
        if    ($one eq 'uc')      { $body = uc $body }
        elsif ($one eq 'lc')      { $body = lc $body }
        elsif ($one eq 'ucfirst') { $body = ucfirst $body }
        elsif ($one eq 'lcfirst') { $body = lcfirst $body }
        elsif ($one eq 'length')  { $body = length $body }
        elsif ($one eq 'md5_hex') {
            require Digest::MD5; $body = Digest::MD5::md5_hex($body);
        } elsif ($one eq 'sha1_hex') {
            require Digest::SHA; $body = Digest::SHA::sha1_hex($body);
        } else {
            bail_out("$name - unknown filter, \"$one\", specified in the "
                     . "--- response_body_filters section");
        }
    }
    return $body;
}

# --- log checks ------------------------------------------------------------

sub check_logs ($$) {
    my ($block, $rep) = @_;
    check_error_log($block, $rep);
    check_access_log($block, $rep);
}

# string => one substring pattern per line; qr// or [ ... ] as given
sub patterns ($) {
    my $p = shift;
    return [$p] if ref $p eq 'Regexp';
    return [@$p] if ref $p eq 'ARRAY';
    chomp $p;
    return [grep { length } split /\n+/, $p];
}

sub line_matches ($$) {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ $pat : index($line, $pat) >= 0;
}

sub fmt_str ($) {
    my $s = shift;
    chomp $s;
    $s =~ s/"/\\"/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

# must / must-not match some line of @$lines (the error.log part of this
# request or the whole access.log)
sub check_lines ($$$$$) {
    my ($name, $pats, $lines, $file, $rep) = @_;
    my ($want, $list) = @$pats;
    for my $pat (grep { defined } @{ patterns($list) }) {
        my @hits = grep { line_matches($_, $pat) } @$lines;
        my $p = fmt_str($pat);
        if ($want) {
            # (upstream quotes the pattern unescaped here, fmt_str below)
            Test::More::ok(scalar @hits, @hits
                ? "$name - pattern \"$pat\" matches a line in $file (req $rep)"
                : "$name - pattern \"$pat\" should match a line in $file "
                  . "(req $rep)");
        } elsif (@hits) {
            Test::More::fail("$name - pattern \"$p\" should not match any "
                . "line in $file but matches line \"" . fmt_str($hits[0])
                . "\" (req $rep)");
            Test::More::diag("matching lines:\n",
                             @hits[0 .. ($#hits > 9 ? 9 : $#hits)]);
        } else {
            Test::More::pass("$name - pattern \"$p\" does not match a line "
                             . "in $file (req $rep)");
        }
    }
}

sub check_error_log ($$) {
    my ($block, $rep) = @_;
    my $name = $block->name;
    my $lines = error_log_lines();

    my $grep = $block->grep_error_log;
    bail_out("$name - No --- grep_error_log defined but --- "
             . "grep_error_log_out is defined")
        if !defined $grep && defined $block->grep_error_log_out;
    if (defined $grep) {
        $grep = $grep->[$rep] if ref $grep eq 'ARRAY';
        my $exp = $block->grep_error_log_out;
        bail_out("$name - No --- grep_error_log_out defined but --- "
                 . "grep_error_log is defined") unless defined $exp;
        $exp = $exp->[$rep] if ref $exp eq 'ARRAY';
        $exp = expand_env($exp, $name, $RandPorts);
        my $got = '';
        for my $l (@$lines) {
            if (ref $grep ? $l =~ $grep : $l =~ /\Q$grep\E/) {
                $got .= "$&\n" if $& !~ /\n/;
            }
        }
        if (ref $exp eq 'Regexp') {
            Test::More::like($got, $exp,
                             "$name - grep_error_log_out (req $rep)");
        } else {
            is_str($got, $exp, "$name - grep_error_log_out (req $rep)");
        }
    }

    my %quiet;      # levels the block's own patterns talk about
    for my $p (grep { defined } $block->error_log, $block->no_error_log) {
        for my $x (ref $p eq 'ARRAY' ? @$p : ($p)) {
            $quiet{$1} = 1 while !ref $x && $x =~ /\[(alert|crit|emerg)/g;
        }
    }
    check_lines($name, [1, $block->error_log], $lines, 'error.log', $rep)
        if defined $block->error_log;
    check_lines($name, [0, $block->no_error_log], $lines, 'error.log', $rep)
        if defined $block->no_error_log;

    for my $l (@$lines) {
        # upstream warns on these unless the block's patterns mention them
        warn "WARNING: $name - ", fmt_str($l), "\n"
            if $l =~ /\[(alert|crit|emerg)\]/ && !$quiet{$1};
        if ($l =~ /\bAssertion .*?failed\b/) {
            chomp(my $c = $l);
            Test::More::fail("$name - $c");
        }
    }
}

sub check_access_log ($$) {
    my ($block, $rep) = @_;
    return unless defined $block->access_log
                  || defined $block->no_access_log;
    my $name = $block->name;
    my $lines = access_log_lines();
    check_lines($name, [1, $block->access_log], $lines, 'access.log', $rep)
        if defined $block->access_log;
    check_lines($name, [0, $block->no_access_log], $lines, 'access.log',
                $rep) if defined $block->no_access_log;
}

# --- string comparison -------------------------------------------------------

# is() that, for long strings (Test::LongString's job upstream), reports
# where they start to differ; no_long_string() makes it a plain is().
sub is_str ($$;$) {
    my ($got, $exp, $desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return Test::More::like($got, $exp, $desc) if ref $exp eq 'Regexp';
    return Test::More::is($got, $exp, $desc)
        if $NoLongString || !defined $got || !defined $exp;
    return Test::More::pass($desc) if $got eq $exp;
    Test::More::fail($desc);
    my $i = 0;
    $i++ while $i < length $got && $i < length $exp
               && substr($got, $i, 1) eq substr($exp, $i, 1);
    my $show = sub {
        my $s = substr $_[0], ($i > 20 ? $i - 20 : 0), 60;
        $s =~ s/([^\x20-\x7e])/sprintf '\\x%02x', ord $1/ge;
        return "\"$s\"";
    };
    Test::More::diag(sprintf "%12s: %s\n%12s: %d\n" x 2
        . "    strings begin to differ at char %d", got => $show->($got),
        length => length $got, expected => $show->($exp),
        length => length $exp, $i + 1);
    return 0;
}
