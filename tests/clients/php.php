<?php
// tests/clients/php.php HOST PORT - php-memcached (Debian php-memcached,
// over libmemcached) against a memcached-protocol server: one canonical line
// per operation, the sequence of tests/clients/python.py.
[$_, $host, $port] = $argv;

function client() {
	global $host, $port;
	$m = new Memcached();
	$m->setOption(Memcached::OPT_CONNECT_TIMEOUT, 5000);
	$m->setOption(Memcached::OPT_RECV_TIMEOUT, 10000000);
	$m->setOption(Memcached::OPT_SEND_TIMEOUT, 10000000);
	// Values as they are: no compression, no serialising.
	$m->setOption(Memcached::OPT_COMPRESSION, false);
	$m->addServer($host, (int)$port);
	return $m;
}

function show($v) {
	if ($v === null) return 'None';
	if ($v === true) return 'True';
	if ($v === false) return 'False';
	if (is_int($v)) return (string)$v;
	if (is_array($v)) return 'ARRAY';
	if (strlen($v) <= 40 && preg_match('/^[\x21-\x7e]+$/', $v))
		return "b:$v";
	return sprintf('b%d:%s', strlen($v), substr(sha1($v), 0, 12));
}

// A result and, for a failure, libmemcached's result code by name.
function res($m, $v) {
	if ($v !== false) return show($v);
	$codes = [
		Memcached::RES_NOTFOUND => 'NOTFOUND',
		Memcached::RES_NOTSTORED => 'NOTSTORED',
		Memcached::RES_DATA_EXISTS => 'EXISTS',
		Memcached::RES_SERVER_ERROR => 'SERVER_ERROR',
		Memcached::RES_CLIENT_ERROR => 'CLIENT_ERROR',
		Memcached::RES_BAD_KEY_PROVIDED => 'BAD_KEY',
		Memcached::RES_E2BIG => 'E2BIG',
	];
	$rc = $m->getResultCode();
	return 'False ' . ($codes[$rc] ?? "rc$rc");
}

function out($op, $v) { echo "$op $v\n"; }

// Each refused request on a connection of its own: a refusal may leave the
// library out of step with the server's replies.
function alone($key, $val) {
	$one = client();
	$r = res($one, $one->set($key, $val));
	$one->quit();
	return $r;
}

$c = client();
out('flush', res($c, $c->flush()));
out('set', res($c, $c->set('k1', 'hello')));
out('get', res($c, $c->get('k1')));
out('get-miss', res($c, $c->get('nope')));
out('set2', res($c, $c->set('k2', 'two', 100)));
$h = $c->getMulti(['k1', 'nope', 'k2']);
ksort($h);
out('get-many', implode(' ', array_map(fn($k) => "$k=" . show($h[$k]),
    array_keys($h))));
out('add-exists', res($c, $c->add('k1', 'x')));
out('add-new', res($c, $c->add('k3', 'three')));
out('replace-miss', res($c, $c->replace('nope', 'x')));
out('replace', res($c, $c->replace('k1', 'world')));
out('append', res($c, $c->append('k1', '!')));
out('prepend', res($c, $c->prepend('k1', '>')));
out('get-after', res($c, $c->get('k1')));
$g = $c->get('k1', null, Memcached::GET_EXTENDED);
out('gets', show($g['value']) . ' cas=' . (is_numeric($g['cas']) && $g['cas'] > 0 ? 'int' : $g['cas']));
out('cas-ok', res($c, $c->cas($g['cas'], 'k1', 'casval')));
out('cas-stale', res($c, $c->cas($g['cas'], 'k1', 'again')));
out('cas-miss', res($c, $c->cas($g['cas'], 'nope', 'x')));
out('get-cas', res($c, $c->get('k1')));
out('delete', res($c, $c->delete('k1')));
out('delete-miss', res($c, $c->delete('k1')));
out('set-n', res($c, $c->set('n', '10')));
out('incr', res($c, $c->increment('n', 5)));
out('decr', res($c, $c->decrement('n', 20)));
out('incr-miss', res($c, $c->increment('nope', 1)));
out('incr-nan', res($c, $c->increment('k2', 1)));
out('touch', res($c, $c->touch('k2', 100)));
out('touch-miss', res($c, $c->touch('nope', 100)));
$values = [
	'spaces' => "a b  c\r\nd",
	'utf8' => "नमस्ते ☃ ünïcode",
	'100k' => str_repeat(implode('', array_map('chr', range(0, 255))), 400),
];
foreach ($values as $name => $val) {
	out("set-$name", res($c, $c->set("bin-$name", $val)));
	out("get-$name", $c->get("bin-$name") === $val ? 'True' : 'False');
}
$key250 = str_repeat('K', 250);
out('set-key250', res($c, $c->set($key250, 'long')));
out('get-key250', res($c, $c->get($key250)));
out('set-key251', alone(str_repeat('K', 251), 'long'));
out('set-1mib', alone('onemib', str_repeat('x', 1024 * 1024)));
out('set-2mib', alone('huge', str_repeat('x', 2 * 1024 * 1024)));
out('get-2mib', res($c, $c->get('huge')));
out('after-2mib', res($c, $c->get('k2')));
$st = $c->getStats();
$one = $st["$host:$port"] ?? [];
out('stats', isset($one['curr_items']) && isset($one['pid']) ? 'ok' : 'missing');
$v = $c->getVersion()["$host:$port"] ?? 'None';
out('version', preg_match('/^1\.6\./', $v) ? '1.6.x' : $v);
out('flush-end', res($c, $c->flush()));
out('get-flushed', res($c, $c->get('k2')));
