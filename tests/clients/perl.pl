#!/usr/bin/perl
# tests/clients/perl.pl HOST PORT - Cache::Memcached::Fast (Debian
# libcache-memcached-fast-perl) against a memcached-protocol server: one
# canonical line per operation, the sequence of tests/clients/python.py.
use strict;
use warnings;
use Cache::Memcached::Fast;
use Digest::SHA qw(sha1_hex);

my ($host, $port) = @ARGV;
sub client {
	return Cache::Memcached::Fast->new({
		servers => ["$host:$port"], connect_timeout => 5,
		io_timeout => 10,
	});
}
my $c = client();
# A refused request can leave the library out of step with its replies
# (memcached answers a 251-byte key's data line with ERROR): each of those
# gets a connection of its own.
sub alone {
	my ($key, $val) = @_;
	my $one = client();
	my $r = $one->set($key, $val);
	$one->disconnect_all;
	return $r;
}

sub show {
	my ($v) = @_;
	return 'None' unless defined $v;
	return 'HASH' if ref $v;
	return "b:$v" if length($v) <= 40 && $v =~ /^[\x21-\x7e]+$/;
	return sprintf('b%d:%s', length($v), substr(sha1_hex($v), 0, 12));
}

sub out { print "$_[0] $_[1]\n" }
sub ok { return defined $_[0] ? ($_[0] ? 'True' : 'False') : 'None' }

out('flush', ok($c->flush_all));
out('set', ok($c->set('k1', 'hello')));
out('get', show($c->get('k1')));
out('get-miss', show($c->get('nope')));
out('set2', ok($c->set('k2', 'two', 100)));
my $h = $c->get_multi('k1', 'nope', 'k2');
out('get-many', join(' ', map { "$_=" . show($h->{$_}) } sort keys %$h));
out('add-exists', ok($c->add('k1', 'x')));
out('add-new', ok($c->add('k3', 'three')));
out('replace-miss', ok($c->replace('nope', 'x')));
out('replace', ok($c->replace('k1', 'world')));
out('append', ok($c->append('k1', '!')));
out('prepend', ok($c->prepend('k1', '>')));
out('get-after', show($c->get('k1')));
my $g = $c->gets('k1');
out('gets', show($g->[1]) . ' cas=' . ($g->[0] =~ /^[1-9][0-9]*$/ ? 'int' : $g->[0]));
out('cas-ok', ok($c->cas('k1', $g->[0], 'casval')));
out('cas-stale', ok($c->cas('k1', $g->[0], 'again')));
out('cas-miss', ok($c->cas('nope', $g->[0], 'x')));
out('get-cas', show($c->get('k1')));
out('delete', ok($c->delete('k1')));
out('delete-miss', ok($c->delete('k1')));
out('set-n', ok($c->set('n', '10')));
out('incr', show($c->incr('n', 5)));
out('decr', show($c->decr('n', 20)));
out('incr-miss', show($c->incr('nope', 1)));
out('incr-nan', show($c->incr('k2', 1)));
out('touch', ok($c->touch('k2', 100)));
out('touch-miss', ok($c->touch('nope', 100)));
my %values = (
	spaces => "a b  c\r\nd",
	utf8 => "\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87 \xe2\x98\x83",
	'100k' => join('', map { chr } 0 .. 255) x 400,
);
for my $name ('spaces', 'utf8', '100k') {
	out("set-$name", ok($c->set("bin-$name", $values{$name})));
	my $got = $c->get("bin-$name");
	out("get-$name", defined $got && $got eq $values{$name} ? 'True' : 'False');
}
my $key250 = 'K' x 250;
out('set-key250', ok($c->set($key250, 'long')));
out('get-key250', show($c->get($key250)));
out('set-key251', ok(alone('K' x 251, 'long')));
out('set-1mib', ok(alone('onemib', 'x' x (1024 * 1024))));
out('set-2mib', ok(alone('huge', 'x' x (2 * 1024 * 1024))));
out('get-2mib', show($c->get('huge')));
out('after-2mib', show($c->get('k2')));
# Cache::Memcached::Fast has no stats call.
out('stats', 'n/a');
my $v = $c->server_versions->{"$host:$port"} // 'None';
out('version', $v =~ /^1\.6\./ ? '1.6.x' : $v);
out('flush-end', ok($c->flush_all));
out('get-flushed', show($c->get('k2')));
