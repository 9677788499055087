#!/usr/bin/env python3
"""nonblocking-fd3.py COMMAND...: run COMMAND as systemd's Accept=yes
would, with the accepted connection on fd 3 (LISTEN_FDS=1, LISTEN_PID its
own pid), but passed non-blocking, as NonBlocking=yes makes systemd pass
it; its stdout and stderr go to the file $NB_LOG.  Sends "ping", prints the reply line, then the CPU the command used
(utime+stime, clock ticks) while the connection sat idle for 1.5 s, then
closes and prints the command's exit status.  The command is killed if
anything goes wrong."""
import os, signal, socket, sys, time

lsn = socket.socket()
lsn.bind(("127.0.0.1", 0))
lsn.listen(1)
cli = socket.create_connection(lsn.getsockname(), timeout=10)
srv, _ = lsn.accept()
srv.setblocking(False)
pid = os.fork()
if pid == 0:
    os.dup2(srv.fileno(), 3)            # inheritable: no FD_CLOEXEC
    log = os.open(os.environ["NB_LOG"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
    os.execve(sys.argv[1], sys.argv[1:], env)
srv.close()
lsn.close()
done = False
try:
    cli.sendall(b"ping\r\n")
    line = b""
    while not line.endswith(b"\n"):
        b = cli.recv(1)
        if not b:
            break
        line += b
    print("reply", line.decode().rstrip("\r\n"))
    def ticks():
        f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])
    t0 = ticks()
    time.sleep(1.5)                     # the window measured, not a wait
    print("idle_ticks", ticks() - t0)
    cli.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        p, status = os.waitpid(pid, os.WNOHANG)
        if p == pid:
            done = True
            print("exit", os.waitstatus_to_exitcode(status))
            break
        time.sleep(0.05)
finally:
    if not done:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
