#!/usr/bin/python3
# tests/clients/python.py HOST PORT - pymemcache (Debian python3-pymemcache)
# against a memcached-protocol server: one canonical line per operation, the
# same sequence as the other tests/clients/ scripts, so that the lines from
# memcached and from kvstored can be compared (tests/clients.bats).
import hashlib
import sys

from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheError

host, port = sys.argv[1], int(sys.argv[2])
c = Client((host, port), default_noreply=False, connect_timeout=5, timeout=10)


def out(op, v):
    print("%s %s" % (op, v))


def show(v):
    """A value as a line: None, True/False, numbers, bytes by length+digest."""
    if v is None or isinstance(v, bool) or isinstance(v, int):
        return repr(v)
    if isinstance(v, (bytes, bytearray)):
        v = bytes(v)
        if len(v) <= 40 and all(32 < b < 127 for b in v):
            return "b:" + v.decode()
        return "b%d:%s" % (len(v), hashlib.sha1(v).hexdigest()[:12])
    return repr(v)


def run(op, f):
    try:
        out(op, show(f()))
    except MemcacheError as e:
        out(op, "error " + type(e).__name__)
    except Exception as e:  # the library's own refusals (key too long)
        out(op, "exception " + type(e).__name__)


run("flush", lambda: c.flush_all())
run("set", lambda: c.set("k1", b"hello"))
run("get", lambda: c.get("k1"))
run("get-miss", lambda: c.get("nope"))
run("set2", lambda: c.set("k2", b"two", expire=100))
run("get-many", lambda: sorted((k, show(v)) for k, v in
                               c.get_many(["k1", "nope", "k2"]).items()))
run("add-exists", lambda: c.add("k1", b"x"))
run("add-new", lambda: c.add("k3", b"three"))
run("replace-miss", lambda: c.replace("nope", b"x"))
run("replace", lambda: c.replace("k1", b"world"))
run("append", lambda: c.append("k1", b"!"))
run("prepend", lambda: c.prepend("k1", b">"))
run("get-after", lambda: c.get("k1"))
v, cas = c.gets("k1")
out("gets", "%s cas=%s" % (show(v), "int" if int(cas) > 0 else cas))
run("cas-ok", lambda: c.cas("k1", b"casval", cas))
run("cas-stale", lambda: c.cas("k1", b"again", cas))
run("cas-miss", lambda: c.cas("nope", b"x", cas))
run("get-cas", lambda: c.get("k1"))
run("delete", lambda: c.delete("k1"))
run("delete-miss", lambda: c.delete("k1"))
run("set-n", lambda: c.set("n", b"10"))
run("incr", lambda: c.incr("n", 5))
run("decr", lambda: c.decr("n", 20))
run("incr-miss", lambda: c.incr("nope", 1))
run("incr-nan", lambda: c.incr("k2", 1))
run("touch", lambda: c.touch("k2", 100))
run("touch-miss", lambda: c.touch("nope", 100))
values = {
    "spaces": b"a b  c\r\nd",
    "utf8": "नमस्ते ☃ ünïcode".encode(),
    "100k": bytes(range(256)) * 400,
}
for name, val in values.items():
    run("set-" + name, lambda: c.set("bin-" + name, val))
    run("get-" + name, lambda: c.get("bin-" + name) == val)
key250 = "K" * 250
run("set-key250", lambda: c.set(key250, b"long"))
run("get-key250", lambda: c.get(key250))
run("set-key251", lambda: c.set("K" * 251, b"long"))
run("set-1mib", lambda: c.set("onemib", b"x" * (1024 * 1024)))
run("set-2mib", lambda: c.set("huge", b"x" * (2 * 1024 * 1024)))
run("get-2mib", lambda: c.get("huge"))
run("after-2mib", lambda: c.get("k2"))
st = c.stats()
out("stats", "ok" if b"curr_items" in st and b"pid" in st else sorted(st))
ver = c.version().decode()
out("version", "1.6.x" if ver.startswith("1.6.") else ver)
run("flush-end", lambda: c.flush_all())
run("get-flushed", lambda: c.get("k2"))
c.close()
