// tests/clients/node/client.js HOST PORT - the npm memcached client (pinned
// in package-lock.json) against a memcached-protocol server: one canonical
// line per operation, the sequence of tests/clients/python.py.
'use strict';
const crypto = require('crypto');
const Memcached = require('memcached');

const [host, port] = process.argv.slice(2);
const where = `${host}:${port}`;

function client() {
  // No retries, no failover: a failure shows as it is.
  return new Memcached(where, { retries: 0, retry: 1000, timeout: 10000,
    idle: 5000, failures: 1000, remove: false, reconnect: 1000 });
}

function show(v) {
  if (v === undefined || v === null) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number') return String(v);
  const b = Buffer.isBuffer(v) ? v : Buffer.from(String(v));
  if (b.length <= 40 && /^[\x21-\x7e]+$/.test(b.toString('latin1')))
    return 'b:' + b.toString('latin1');
  return `b${b.length}:` +
    crypto.createHash('sha1').update(b).digest('hex').slice(0, 12);
}

// call(fn): the callback's result, or "error <message>".
function call(c, name, ...args) {
  return new Promise((resolve) => {
    c[name](...args, (err, res) => {
      if (err) resolve('error ' + String(err.message || err).split('\n')[0]);
      else resolve(res);
    });
  });
}

function out(op, v) {
  process.stdout.write(`${op} ${typeof v === 'string' && v.startsWith('error ') ? v : show(v)}\n`);
}

async function alone(key, val) {
  const one = client();
  const r = await call(one, 'set', key, val, 0);
  one.end();
  return r;
}

async function main() {
  const c = client();
  const f = await call(c, 'flush');
  out('flush', Array.isArray(f) ? f.every((x) => x === true) : f);
  out('set', await call(c, 'set', 'k1', 'hello', 0));
  out('get', await call(c, 'get', 'k1'));
  out('get-miss', await call(c, 'get', 'nope'));
  out('set2', await call(c, 'set', 'k2', 'two', 100));
  const h = await call(c, 'getMulti', ['k1', 'nope', 'k2']);
  process.stdout.write('get-many ' + (typeof h === 'string' ? h :
    Object.keys(h).sort().map((k) => `${k}=${show(h[k])}`).join(' ')) + '\n');
  out('add-exists', await call(c, 'add', 'k1', 'x', 0));
  out('add-new', await call(c, 'add', 'k3', 'three', 0));
  out('replace-miss', await call(c, 'replace', 'nope', 'x', 0));
  out('replace', await call(c, 'replace', 'k1', 'world', 0));
  out('append', await call(c, 'append', 'k1', '!'));
  out('prepend', await call(c, 'prepend', 'k1', '>'));
  out('get-after', await call(c, 'get', 'k1'));
  const g = await call(c, 'gets', 'k1');
  process.stdout.write(`gets ${show(g.k1)} cas=${/^[1-9][0-9]*$/.test(g.cas) ? 'int' : g.cas}\n`);
  out('cas-ok', await call(c, 'cas', 'k1', 'casval', g.cas, 0));
  out('cas-stale', await call(c, 'cas', 'k1', 'again', g.cas, 0));
  out('cas-miss', await call(c, 'cas', 'nope', 'x', g.cas, 0));
  out('get-cas', await call(c, 'get', 'k1'));
  out('delete', await call(c, 'del', 'k1'));
  out('delete-miss', await call(c, 'del', 'k1'));
  out('set-n', await call(c, 'set', 'n', '10', 0));
  out('incr', await call(c, 'incr', 'n', 5));
  out('decr', await call(c, 'decr', 'n', 20));
  out('incr-miss', await call(c, 'incr', 'nope', 1));
  out('incr-nan', await call(c, 'incr', 'k2', 1));
  out('touch', await call(c, 'touch', 'k2', 100));
  out('touch-miss', await call(c, 'touch', 'nope', 100));
  const all = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  const values = {
    spaces: 'a b  c\r\nd',
    utf8: 'नमस्ते ☃ ünïcode',
    '100k': Buffer.concat(Array(400).fill(all)),
  };
  for (const [name, val] of Object.entries(values)) {
    out(`set-${name}`, await call(c, 'set', `bin-${name}`, val, 0));
    const got = await call(c, 'get', `bin-${name}`);
    const same = Buffer.isBuffer(val) ? Buffer.isBuffer(got) && got.equals(val)
      : got === val;
    out(`get-${name}`, same);
  }
  const key250 = 'K'.repeat(250);
  out('set-key250', await call(c, 'set', key250, 'long', 0));
  out('get-key250', await call(c, 'get', key250));
  out('set-key251', await alone('K'.repeat(251), 'long'));
  out('set-1mib', await alone('onemib', 'x'.repeat(1024 * 1024)));
  out('set-2mib', await alone('huge', 'x'.repeat(2 * 1024 * 1024)));
  out('get-2mib', await call(c, 'get', 'huge'));
  out('after-2mib', await call(c, 'get', 'k2'));
  const st = await call(c, 'stats');
  const one = Array.isArray(st) ? st[0] || {} : {};
  process.stdout.write(`stats ${'curr_items' in one && 'pid' in one ? 'ok' : 'missing'}\n`);
  const v = await call(c, 'version');
  const ver = Array.isArray(v) && v[0] ? `${v[0].major}.${v[0].minor}` : String(v);
  process.stdout.write(`version ${ver === '1.6' ? '1.6.x' : ver}\n`);
  const f2 = await call(c, 'flush');
  out('flush-end', Array.isArray(f2) ? f2.every((x) => x === true) : f2);
  out('get-flushed', await call(c, 'get', 'k2'));
  c.end();
}

// The library keeps timers (idle, reconnect) after end(): exit once the
// output is out.
main().then(() => process.stdout.write('', () => process.exit(0)),
  (e) => { console.error(e); process.exit(1); });
