#!/usr/bin/env python3
"""churn.py - mixed-size churn against a memcached-protocol server.

usage: churn.py PORT SECONDS [FILL] [MAXSIZE]

Keeps the store near FILL (0.8) of its memory with values whose sizes are
uniform on a log scale from 1 byte to MAXSIZE (65536): while it is below,
it sets a new key; above, it deletes a random one.  Every refused set
(SERVER_ERROR out of memory) is compared with the free bytes the server
reports at that moment (limit_maxbytes - bytes): the issue's target is no
refusal while the free bytes are at least four times the value's size.

Prints one line of figures: sets, deletes, refusals, refusals with free
>= 4x the size, and the largest free/size ratio of a refused set.
Only loopback: the server is 127.0.0.1:PORT.
"""
import math
import random
import socket
import sys
import time


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.s.recv(65536)
            if not data:
                raise EOFError("server closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("ascii", "replace")

    def call(self, req):
        self.s.sendall(req)
        return self.line()

    def stats(self):
        self.s.sendall(b"stats\r\n")
        out = {}
        while True:
            line = self.line()
            if line == "END":
                return out
            parts = line.split()
            if len(parts) == 3 and parts[0] == "STAT":
                out[parts[1]] = parts[2]


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: churn.py PORT SECONDS [FILL] [MAXSIZE]")
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    fill = float(sys.argv[3]) if len(sys.argv) > 3 else 0.8
    maxsize = int(sys.argv[4]) if len(sys.argv) > 4 else 65536
    rng = random.Random(20261201)
    c = Conn(port)
    st = c.stats()
    limit = int(st["limit_maxbytes"])
    keys = {}          # key -> value size
    order = []         # the same keys, for a random pick
    seq = 0
    sets = dels = refused = bad = 0
    worst = 0.0
    used = int(st["bytes"])
    end = time.monotonic() + seconds
    ops = 0
    while time.monotonic() < end:
        ops += 1
        if ops % 256 == 0:
            used = int(c.stats()["bytes"])
        if used < fill * limit or not keys:
            size = int(math.exp(rng.uniform(0, math.log(maxsize))))
            seq += 1
            key = "c%d" % seq
            reply = c.call(b"set %s 0 0 %d\r\n%s\r\n" %
                           (key.encode(), size, b"v" * size))
            if reply == "STORED":
                keys[key] = size
                order.append(key)
                sets += 1
                used += size + len(key) + 48
            elif reply.startswith("SERVER_ERROR out of memory"):
                refused += 1
                free = limit - int(c.stats()["bytes"])
                ratio = free / size
                worst = max(worst, ratio)
                if free >= 4 * size:
                    bad += 1
            else:
                sys.exit("churn.py: set %s: %s" % (key, reply))
        else:
            i = rng.randrange(len(order))
            key = order[i]
            order[i] = order[-1]
            order.pop()
            reply = c.call(b"delete %s\r\n" % key.encode())
            if reply != "DELETED":
                sys.exit("churn.py: delete %s: %s" % (key, reply))
            used -= keys.pop(key)
            dels += 1
    st = c.stats()
    print("churn: %.0f s at %.0f%% of %d bytes, sizes 1..%d: %d sets, "
          "%d deletes, %d refused, %d refused with free >= 4x size, "
          "largest refused free/size %.1f, items %s" %
          (seconds, fill * 100, limit, maxsize, sets, dels, refused, bad,
           worst, st.get("curr_items")))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
