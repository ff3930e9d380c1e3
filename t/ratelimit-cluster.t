# Copyright (C) nginx-gw authors
# gw_ratelimit with a Redis Cluster (3 masters, 3 replicas, started once for
# the file by redis-cli --cluster create): the limits are exact over all
# hash slots and across two nginx instances; a request whose limits live
# in two slots is charged to none when one rejects it; a slot migrated to
# another master is followed (MOVED); a manual failover (CLUSTER FAILOVER)
# and a killed master cost at most the deadline for the requests in
# flight (fail policy), then the decisions go on, exact, on the promoted
# replica.  The blocks change the cluster: they run in order.

use Test::Nginx::Socket 'no_plan';
use GwTest;
use GwRedis;
use POSIX ();
use Time::HiRes qw(sleep time);

repeat_each(1);
no_shuffle();

our $Slow = $ENV{TEST_NGINX_USE_VALGRIND} ? 10 : 1;

our @Ports = map { GwRedis::free_port() } 1 .. 6;
$ENV{"TEST_NGINX_GWRL_C$_"} = $Ports[$_ - 1] for 1 .. 6;
$ENV{TEST_NGINX_GWRL_PEER_PORT} = GwRedis::free_port();

our %Pid;
@Pid{@Ports} = GwRedis::start_cluster(@Ports);

our $Http = <<'END';
    gw_ratelimit_redis 127.0.0.1:$TEST_NGINX_GWRL_C1 127.0.0.1:$TEST_NGINX_GWRL_C2
                       cluster timeout=300ms;
    gw_ratelimit_log_level info;
    gw_ratelimit_zone $arg_c zone=per_client rate=5r/m
                      algorithm=sliding_window;
    gw_ratelimit_zone $arg_t zone=per_tenant rate=1000r/m
                      algorithm=sliding_window;
    gw_ratelimit_fail closed;
END

our $Locations = <<'END';
    location /c {
        gw_ratelimit zone=per_client;
        add_header X-RL $gw_ratelimit_status always;
        empty_gif;
    }
    location /ct {
        gw_ratelimit zone=per_client;
        gw_ratelimit zone=per_tenant;
        add_header X-RL $gw_ratelimit_status always;
        empty_gif;
    }
END

our $Peer;

# The second instance: the same zones on the same cluster.
sub start_peer { $Peer //= GwRedis::start_peer($Http, $Locations) }

# a live master (the cluster's view from any node that answers)
sub live {
    for my $p (@Ports) {
        next unless $Pid{$p};
        my $r = eval { GwRedis::command($p, 'PING') };
        return $p if defined $r && $r eq 'PONG';
    }
    die "no live node";
}

sub cmd { GwRedis::command(live(), @_) }

# the port of the master that serves a slot
sub owner {
    my $slot = shift;
    for my $range (@{ cmd('CLUSTER', 'SLOTS') }) {
        return $range->[2][1] if $range->[0] <= $slot && $slot <= $range->[1];
    }
    die "slot $slot not served";
}

sub slot_of { cmd('CLUSTER', 'KEYSLOT', shift) }

# CRC16 (XMODEM) mod 16384, as Redis Cluster hashes a key
our @Crc = map {
    my $crc = $_ << 8;
    for (1 .. 8) {
        $crc = $crc & 0x8000 ? (($crc << 1) ^ 0x1021) & 0xffff
                             : ($crc << 1) & 0xffff;
    }
    $crc;
} 0 .. 255;

sub crc16_slot {
    my $crc = 0;
    $crc = (($crc << 8) & 0xffff) ^ $Crc[(($crc >> 8) ^ $_) & 0xff]
        for unpack 'C*', shift;
    return $crc & 16383;
}

# the $n-th client id (from 1) whose keys are in the slot of $key's
our %Same;
sub same_slot {
    my ($key, $n) = @_;
    my $slot = crc16_slot($key);
    my $list = $Same{$slot} //= [];
    my $i = @$list ? substr($list->[-1], 1) : 0;
    while (@$list < $n) {
        die "no key in slot $slot" if ++$i > 3000000;
        push @$list, "s$i" if crc16_slot("s$i") == $slot;
    }
    return $list->[$n - 1];
}

sub flush {
    for my $range (@{ cmd('CLUSTER', 'SLOTS') }) {
        GwRedis::command($range->[2][1], 'FLUSHALL');
    }
}

# $n requests of client $c, alternating between the two instances (the
# test server first); returns the statuses
sub alternate {
    my ($path, $n) = @_;
    my @ports = ($ENV{TEST_NGINX_SERVER_PORT}, $ENV{TEST_NGINX_GWRL_PEER_PORT});
    my @st;
    for my $i (0 .. $n - 1) {
        my %r = GwRedis::http_get($ports[$i % 2], $path);
        push @st, $r{status};
    }
    return @st;
}

# the status and $gw_ratelimit_status of a request to the test server
sub get {
    my %r = GwRedis::http_get($ENV{TEST_NGINX_SERVER_PORT}, shift);
    return ($r{status}, $r{headers}{'x-rl'} // '', $r{secs});
}

# a command for the master of a key's slot
sub key_cmd {
    my ($key, @args) = @_;
    my $tag = $key =~ /\{([^}]+)\}/ ? $1 : $key;
    return GwRedis::command(owner(crc16_slot($tag)), @args);
}

# a replica of the master on $port
sub replica_of {
    my $port = shift;
    my $id = GwRedis::command($port, 'CLUSTER', 'MYID');
    for my $p (@Ports) {
        next if $p == $port || !$Pid{$p};
        my $role = eval { GwRedis::command($p, 'ROLE') } or next;
        return $p if $role->[0] eq 'slave' && $role->[2] == $port;
    }
    die "no replica of $port";
}

sub wait_for {
    my ($what, $secs, $test) = @_;
    my $t0 = time;
    while (time - $t0 < $secs) {
        return time - $t0 if $test->();
        sleep 0.05;
    }
    die "$what: not within $secs s";
}

GwTest::use_defaults(
    modules => ['ratelimit'],
    http_config => $Http,
    config => $Locations,
);

run_tests();

__DATA__

=== TEST 1: exact over every hash slot, across two instances: 64 clients,
5 admitted each of 7
--- init
main::flush();
main::start_peer();
my %per;
my @pids;
pipe(my $r, my $w) or die;
for my $g (0 .. 3) {
    my $pid = fork // die;
    if ($pid == 0) {
        close $r;
        for my $c (map { "client$_" } $g * 16 .. $g * 16 + 15) {
            my @st = main::alternate("/c?c=$c", 7);
            syswrite $w, "$c @st\n";
        }
        close $w;
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
close $w;
my %seen;
while (my $line = <$r>) {
    my ($c, @st) = split ' ', $line;
    $seen{$c} = join ' ', @st;
}
waitpid $_, 0 for @pids;
my @bad = grep { $seen{$_} ne '200 200 200 200 200 429 429' } sort keys %seen;
Test::More::is(scalar keys %seen, 64, "64 clients");
Test::More::is("@bad", '', "each: exactly 5 of 7, on both instances");
my %slots = map { main::owner(main::slot_of($_)) => 1 } keys %seen;
Test::More::is(scalar keys %slots, 3, "their keys on all three masters");
--- request
GET /c?c=client0
--- error_code: 429
--- response_headers
X-RL: REJECTED
--- no_error_log
[error]
MOVED
ASK



=== TEST 2: limits in two hash slots: a request one rejects is charged to
none (the other's charge is taken back)
--- init
main::flush();
my $port = $ENV{TEST_NGINX_SERVER_PORT};
Test::More::is(main::crc16_slot('alice'), main::slot_of('alice'),
               "the slot of a key, as Redis computes it");
Test::More::isnt(main::slot_of('alice'), main::slot_of('acme'),
                 "two slots");
my @st = map { (main::get("/ct?c=alice&t=acme"))[0] } 1 .. 8;
Test::More::is("@st", "200 200 200 200 200 429 429 429",
               "the client's 5, then rejected");
sleep 0.2;
my $k = 'gw:rl:per_tenant:s:{acme}';
Test::More::is(main::key_cmd($k, 'ZCARD', $k), 5,
               "the tenant charged 5, not 8");
$k = 'gw:rl:per_client:s:{alice}';
Test::More::is(main::key_cmd($k, 'ZCARD', $k), 5, "the client charged 5");
--- request
GET /ct?c=bob&t=acme
--- error_code: 200
--- response_headers
X-RL: PASSED



=== TEST 3: a hash slot migrated to another master: MOVED, followed, exact
--- init
main::flush();
main::start_peer();
my $slot = main::slot_of('mig');
my $from = main::owner($slot);
my ($to) = grep { main::owner(main::slot_of($_)) != $from }
           map { "k$_" } 1 .. 100;
$to = main::owner(main::slot_of($to));
my @st = main::alternate("/c?c=mig", 3);
Test::More::is("@st", "200 200 200", "three before");
# the migration, by hand: importing, migrating, the keys, the new owner
my $from_id = GwRedis::command($from, 'CLUSTER', 'MYID');
my $to_id = GwRedis::command($to, 'CLUSTER', 'MYID');
GwRedis::command($to, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $from_id);
GwRedis::command($from, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $to_id);
my $keys = GwRedis::command($from, 'CLUSTER', 'GETKEYSINSLOT', $slot, 100);
Test::More::ok(scalar @$keys, "keys to move: @$keys");
my $m = GwRedis::command($from, 'MIGRATE', '127.0.0.1', $to, '', 0, 5000,
                         'KEYS', @$keys);
Test::More::is($m, 'OK', "MIGRATE");
for my $p ($to, $from, grep { $_ != $to && $_ != $from }
                       map { $_->[2][1] } @{ main::cmd('CLUSTER', 'SLOTS') })
{
    GwRedis::command($p, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $to_id);
}
main::wait_for("the new owner", 5, sub { main::owner($slot) == $to });
@st = main::alternate("/c?c=mig", 4);
Test::More::is("@st", "200 200 429 429", "two after, then rejected");
--- request
GET /c?c=mig
--- error_code: 429
--- error_log eval
qr/\[info\] .*gw_ratelimit: redis "[^"]+": MOVED slot \d+ to /



=== TEST 4: CLUSTER FAILOVER during traffic: the in-flight requests get the
fail policy at most, then exact on the promoted replica
--- init
main::flush();
main::start_peer();
my $slot = main::slot_of('fo');
my $master = main::owner($slot);
my $replica = main::replica_of($master);
my @st = main::alternate("/c?c=fo", 3);
Test::More::is("@st", "200 200 200", "three before");
sleep 0.2;
# traffic of other clients on the same master meanwhile
my $pid = fork // die;
if ($pid == 0) {
    my ($n, $slow) = (0, 0);
    for my $i (1 .. 60) {
        my %r = GwRedis::http_get($ENV{TEST_NGINX_SERVER_PORT}, "/c?c=t$i");
        $slow++ if $r{secs} > 0.3 + 0.2 * $main::Slow;
        sleep 0.02;
    }
    POSIX::_exit($slow);
}
GwRedis::command($replica, 'CLUSTER', 'FAILOVER');
main::wait_for("the replica promoted", 10,
               sub { main::owner($slot) == $replica });
waitpid $pid, 0;
Test::More::is($? >> 8, 0, "no request waited past its deadline");
my $t = main::wait_for("decisions again", 5, sub {
    (main::get("/c?c=" . main::same_slot('fo', 1)))[1] eq 'PASSED'
});
Test::More::ok(1, "decisions again after $t s");
@st = main::alternate("/c?c=fo", 4);
Test::More::is("@st", "200 200 429 429", "two after, then rejected");
--- request
GET /c?c=fo
--- error_code: 429
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 5: a master killed during traffic: its slots follow the fail
policy within the deadline, the others do not notice; then the promoted
replica decides, exact
--- init
main::flush();
main::start_peer();
my $slot = main::slot_of('kill');
my $master = main::owner($slot);
my ($other) = grep { main::owner(main::slot_of($_)) != $master }
              map { "other$_" } 1 .. 100;
my @st = main::alternate("/c?c=kill", 3);
Test::More::is("@st", "200 200 200", "three before");
# replication is asynchronous: what the replica has not received when its
# master dies is lost (README), so wait until it has the three, through a
# write of our own in the same slot: the replica acknowledges offsets
my $acked = GwRedis::commands($master, ['SET', '{kill}sync', 1],
                              ['WAIT', 1, 5000]);
Test::More::is($acked, 1, "the replica has the three");
GwRedis::stop($main::Pid{$master}, 'KILL');
$main::Pid{$master} = 0;
my $t0 = time;
my %status;
my ($late, $others_ok) = (0, 1);
for my $i (1 .. 30) {
    # a client of the dead master's slot
    my %r = GwRedis::http_get($ENV{TEST_NGINX_SERVER_PORT},
                              "/c?c=" . main::same_slot('kill', $i));
    $status{$r{status}}++;
    $late++ if $r{secs} > 0.3 + 0.2 * $main::Slow;
    my %o = GwRedis::http_get($ENV{TEST_NGINX_SERVER_PORT},
                              "/c?c=$other-$i");
    $others_ok = 0 unless $o{status} == 200 || $o{status} == 503;
    last if $r{status} == 200 && time - $t0 > 0.5;
    sleep 0.1;
}
Test::More::ok($status{503}, "the dead master's slot: 503 meanwhile ("
               . join(', ', map { "$_: $status{$_}" } sort keys %status)
               . ")");
Test::More::is($late, 0, "none past the deadline");
my $t = main::wait_for("the replica promoted", 15, sub {
    my $o = eval { main::owner($slot) };
    defined $o && $o != $master;
});
Test::More::ok(1, "promoted after " . sprintf("%.1f", time - $t0) . " s");
my $probe = 31;
main::wait_for("decisions again on both instances", 5, sub {
    my $c = main::same_slot('kill', $probe++);
    my @st = main::alternate("/c?c=$c", 2);
    "@st" eq "200 200";
});
@st = main::alternate("/c?c=kill", 4);
Test::More::is("@st", "200 200 429 429", "two after, then rejected");
--- request
GET /c?c=kill
--- error_code: 429
--- error_log
connect failed
--- no_error_log
[alert]
[crit]
[emerg]
