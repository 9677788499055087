#!/usr/bin/env python3
"""cachefill.py - many writes or reads at once, for cache.bats.

usage: cachefill.py PORT USER SECRET put PREFIX FIRST COUNT SIZE
       cachefill.py PORT USER SECRET get PREFIX FIRST COUNT [STEP]
       cachefill.py PORT USER SECRET del PREFIX FIRST COUNT [STEP]

Logs in to kvstored natively on 127.0.0.1 PORT, then pipelines the
requests (in batches of 256) for keys PREFIX<FIRST> ... and prints:
  put: "stored N full M" (OK replies, ERR full replies; any other reply
       is an error and exits 1)
  get: "found N missing M", with N's values checked to be the ones put
       (value(): the key's bytes over and over, cut to the value's size)
  del: "deleted N missing M"
With STEP (get, del: 1), only every STEP-th key is asked for; del with a
negative STEP deletes all keys but every -STEP-th.
"""
import socket
import sys


def value(key, size):
    return (key.encode() * (size // len(key) + 1))[:size]


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""

    def line(self):
        while b"\n" not in self.buf:
            data = self.s.recv(1 << 20)
            if not data:
                sys.exit("cachefill.py: the server closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("ascii", "replace")

    def exactly(self, n):
        while len(self.buf) < n:
            data = self.s.recv(1 << 20)
            if not data:
                sys.exit("cachefill.py: the server closed the connection")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def main():
    if len(sys.argv) < 8:
        sys.exit(__doc__)
    port, user, secret, op, prefix = (int(sys.argv[1]), sys.argv[2],
                                      sys.argv[3], sys.argv[4], sys.argv[5])
    first, count = int(sys.argv[6]), int(sys.argv[7])
    size = int(sys.argv[8]) if op == "put" else 0
    step = int(sys.argv[8]) if op != "put" and len(sys.argv) > 8 else 1
    c = Conn(port)
    c.s.sendall(b"login %s %s\r\n" % (user.encode(), secret.encode()))
    reply = c.line()
    if not reply.startswith("OK %s " % user):
        sys.exit("cachefill.py: login: %s" % reply)
    good = bad = 0
    for lo in range(first, first + count, 256):
        keys = ["%s%d" % (prefix, k)
                for k in range(lo, min(lo + 256, first + count))
                if (step > 0 and (k - first) % step == 0) or
                (step < 0 and (k - first) % -step != 0)]
        if op == "put":
            c.s.sendall(b"".join(b"put %s {%d}\r\n%s\r\n" %
                                 (k.encode(), size, value(k, size))
                                 for k in keys))
            for k in keys:
                reply = c.line()
                if reply == "OK":
                    good += 1
                elif reply == "ERR full store is full":
                    bad += 1
                else:
                    sys.exit("cachefill.py: put %s: %s" % (k, reply))
        elif op == "del":
            c.s.sendall(b"".join(b"del %s\r\n" % k.encode() for k in keys))
            for k in keys:
                reply = c.line()
                if reply == "OK":
                    good += 1
                elif reply == "NOT_FOUND":
                    bad += 1
                else:
                    sys.exit("cachefill.py: del %s: %s" % (k, reply))
        else:
            c.s.sendall(b"".join(b"get %s\r\n" % k.encode() for k in keys))
            for k in keys:
                reply = c.line()
                if reply == "NOT_FOUND":
                    bad += 1
                elif reply.startswith("VALUE "):
                    n = int(reply.split()[1])
                    data = c.exactly(n)
                    c.line()
                    if data != value(k, n):
                        sys.exit("cachefill.py: get %s: a wrong value" % k)
                    good += 1
                else:
                    sys.exit("cachefill.py: get %s: %s" % (k, reply))
    if op == "put":
        print("stored %d full %d" % (good, bad))
    elif op == "del":
        print("deleted %d missing %d" % (good, bad))
    else:
        print("found %d missing %d" % (good, bad))


if __name__ == "__main__":
    main()
