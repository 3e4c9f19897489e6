# SPDX-License-Identifier: MIT
"""A raw protocol peer for the Python integration tests, and the daemon they
talk to.

Message layouts are not written here: `proto_layout` (built from
tests/integration/proto_layout.c against src/proto.h and src/arena.h) prints
every struct's size and field offsets as the compiler sees them, and
Layout packs and unpacks by those.

Daemon starts the real thpswapd socket-activated on a private socket (bound
and listening before the daemon runs, as harness.c does: peers may connect
at once), with its stderr in a file the tests read.
"""
import array
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time


class Layout:
    def __init__(self, layout_bin):
        out = subprocess.run([layout_bin], capture_output=True, text=True, check=True,
                             timeout=30).stdout
        j = json.loads(out)
        self.consts = j["consts"]
        self.types = j["types"]                # name -> number
        self.names = {v: k for k, v in self.types.items()}
        self.limits = j["limits"]              # name -> index
        self.structs = j["structs"]

    def size(self, name):
        return self.structs[name]["size"]

    def field(self, name, f):
        return self.structs[name]["fields"][f]   # [offset, size, signed]

    def pack(self, name, extra=0, **values):
        """A struct @name (plus @extra bytes) with @values; bytes values fill
        arrays (char[] and flexible arrays) from their start."""
        buf = bytearray(self.size(name) + extra)
        for f, v in values.items():
            off, size, signed = self.field(name, f)
            if isinstance(v, (bytes, bytearray)):
                buf[off:off + len(v)] = v
            else:
                buf[off:off + size] = int(v).to_bytes(size, "little", signed=bool(signed))
        return bytes(buf)

    def get(self, name, buf, f, base=0, index=0):
        """Field @f of struct @name at @base of @buf (element @index of an array)."""
        off, size, signed = self.field(name, f)
        off += base + index * size
        return int.from_bytes(buf[off:off + size], "little", signed=bool(signed))

    def text(self, name, buf, f, base=0):
        off = self.field(name, f)[0] + base
        end = bytes(buf[off:]).find(b"\0")
        return bytes(buf[off:off + end] if end >= 0 else buf[off:]).decode("utf-8", "replace")

    def msg(self, type_name, payload=b"", seq=1):
        hdr = self.pack("thp_msg_hdr", magic=self.consts["THP_PROTO_MAGIC"],
                        version=self.consts["THP_PROTO_VERSION"], type=self.types[type_name],
                        len=self.size("thp_msg_hdr") + len(payload), seq=seq)
        return hdr + payload

    def parse(self, data):
        """(type name, seq, payload) of a received datagram."""
        h = self.size("thp_msg_hdr")
        if len(data) < h or self.get("thp_msg_hdr", data, "magic") != self.consts["THP_PROTO_MAGIC"]:
            raise ValueError(f"not a thpswap message: {bytes(data[:32])!r}")
        t = self.get("thp_msg_hdr", data, "type")
        return self.names.get(t, f"type {t}"), self.get("thp_msg_hdr", data, "seq"), data[h:]


def send(sock, data, fds=()):
    sock.settimeout(30)   # recv() may have left it non-blocking
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    return sock.sendmsg([data], anc)


def recv(sock, timeout):
    """One datagram and the fds that came with it, b"" at EOF, None if
    nothing came within @timeout seconds."""
    sock.settimeout(timeout)
    try:
        data, anc, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(64 * 4))
    except (socket.timeout, BlockingIOError):
        return None, []
    except ConnectionResetError:
        return b"", []
    fds = []
    for level, kind, d in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(d[:len(d) - len(d) % 4])
            fds += list(a)
    return data, fds


UFFD_USER_MODE_ONLY = 1


def userfaultfd(flags=0):
    """A fresh userfaultfd (the daemon calls UFFDIO_API on it); a user
    without CAP_SYS_PTRACE gets one with flags=UFFD_USER_MODE_ONLY."""
    libc = ctypes.CDLL(None, use_errno=True)
    nr = {"x86_64": 323, "aarch64": 282}.get(os.uname().machine)
    if nr is None:
        raise OSError("userfaultfd: unknown syscall number on this machine")
    fd = libc.syscall(nr, os.O_CLOEXEC | os.O_NONBLOCK | flags)
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"userfaultfd: {os.strerror(e)}")
    return fd


class Daemon:
    def __init__(self, daemon_bin, args=()):
        self.dir = tempfile.mkdtemp(prefix="thpswap-peer.")
        self.sock = os.path.join(self.dir, "control.sock")
        self.log = os.path.join(self.dir, "thpswapd.log")
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        lsock.bind(self.sock)
        lsock.listen(64)
        lfd = lsock.fileno()

        def as_fd3():
            if lfd != 3:
                os.dup2(lfd, 3)
            os.set_inheritable(3, True)

        env = dict(os.environ, LISTEN_FDS="1", LISTEN_FDNAMES="control")
        with open(self.log, "wb") as log:
            # LISTEN_PID must be the daemon's own pid: a shell sets it to $$
            # and execs the daemon in its place.
            self.proc = subprocess.Popen(
                ["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$@"', "thpswapd", daemon_bin,
                 "--socket", self.sock, "-v", *args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                close_fds=False, preexec_fn=as_fd3)
        lsock.close()
        self.pid = self.proc.pid

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(self.sock)
        return s

    def fds(self, target=None):
        """The daemon's open fds; with @target, only those open on that
        file (the fds a test sends are /dev/null: counting those is exact,
        while the total moves with connections the daemon has yet to see
        hang up)."""
        d = f"/proc/{self.pid}/fd"
        n = 0
        for fd in os.listdir(d):
            try:
                n += target is None or os.readlink(f"{d}/{fd}") == target
            except OSError:
                pass            # closed meanwhile
        return n

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise OSError("no VmRSS")

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM, wait; the exit status."""
        terminate(self.proc)
        for f in (self.sock, self.log):
            try:
                os.unlink(f)
            except OSError:
                pass
        try:
            os.rmdir(self.dir)
        except OSError:
            pass
        return self.proc.returncode


class Peer:
    """One connection speaking the raw protocol."""

    def __init__(self, daemon, layout):
        self.d = daemon
        self.L = layout
        self.s = daemon.connect()
        self.seq = 0

    def send(self, type_name, payload=b"", fds=(), seq=None):
        if seq is None:
            self.seq += 1
            seq = self.seq
        send(self.s, self.L.msg(type_name, payload, seq), fds)
        return seq

    def recv(self, timeout=10):
        """(type name, seq, payload, fds); ("EOF", ...) at EOF, None on timeout."""
        data, fds = recv(self.s, timeout)
        if data is None:
            return None
        if data == b"":
            return ("EOF", 0, b"", fds)
        t, seq, p = self.L.parse(data)
        return (t, seq, p, fds)

    def error(self, payload):
        return (self.L.get("thp_msg_error", payload, "err"),
                self.L.text("thp_msg_error", payload, "text"))

    def hello_ctl(self):
        self.send("HELLO", self.L.pack("thp_msg_hello", role=self.L.consts["THP_ROLE_CTL"],
                                       comm=b"peer-test"))
        m = self.recv()
        if not m or m[0] != "WELCOME":
            raise RuntimeError(f"control HELLO: got {m!r}")

    def call(self, type_name, payload=b"", want=None, timeout=10):
        """Send and wait for the answer with the same seq (others skipped)."""
        seq = self.send(type_name, payload)
        while True:
            m = self.recv(timeout)
            if m is None or m[0] == "EOF":
                raise RuntimeError(f"{type_name}: no answer ({m!r})")
            if m[1] == seq:
                if want and m[0] != want:
                    raise RuntimeError(f"{type_name}: answered {m[0]} {self.error(m[2]) if m[0] == 'ERROR' else ''}")
                return m

    def limits(self):
        """The LIMITS_REPLY as {name: hits}; -1 each if the daemon has none."""
        t, _s, p, _f = self.call("LIMITS")
        if t != "LIMITS_REPLY":
            print(f"LIMITS answered {t} {self.error(p) if t == 'ERROR' else ''}")
            return {n: -1 for n in self.L.limits}
        return {n: self.L.get("thp_msg_limits_reply", p, "ctr", index=i)
                for n, i in self.L.limits.items()}

    def close(self):
        self.s.close()


class Client(Peer):
    """A client session that is never served by an agent: its region uffd is
    fresh, and it writes its own arena's records."""

    def __init__(self, daemon, layout, max_regions, uffd_flags=0):
        super().__init__(daemon, layout)
        L = layout
        uffd = userfaultfd(uffd_flags)
        try:
            self.send("HELLO", L.pack("thp_msg_hello", role=L.consts["THP_ROLE_CLIENT"],
                                      max_regions=max_regions, comm=b"hostile"), fds=[uffd])
        finally:
            os.close(uffd)
        m = self.recv()
        if not m or m[0] != "WELCOME" or len(m[3]) != 1:
            raise RuntimeError(f"client HELLO: got {m!r}")
        self.arena_fd = m[3][0]
        self.nrec = max_regions
        hdr = os.pread(self.arena_fd, L.size("thp_arena_header"), 0)
        self.records_off = L.get("thp_arena_header", hdr, "records_off")
        if L.get("thp_arena_header", hdr, "max_regions") != max_regions:
            raise RuntimeError("the arena holds another number of records than asked for")

    def make_resident(self, base=1 << 40):
        """Write @nrec RESIDENT records at 2 MiB steps from @base."""
        L = self.L
        rsz = L.size("thp_record")
        buf = bytearray()
        for i in range(self.nrec):
            buf += L.pack("thp_record", state=L.consts["THP_ST_RESIDENT"],
                          addr=base + i * L.consts["THP_REGION_BYTES"])
            if len(buf) != (i + 1) * rsz:
                raise RuntimeError("record size")
        if os.pwrite(self.arena_fd, bytes(buf), self.records_off) != len(buf):
            raise RuntimeError("short write to the arena")

    def close(self):
        os.close(self.arena_fd)
        super().close()


def ctl(ctl_bin, daemon, *args, timeout=60):
    """Run thpswapctl; (exit status, stdout, stderr, seconds), or None if it
    was still running after @timeout s (then killed)."""
    t0 = time.monotonic()
    try:
        p = subprocess.run([ctl_bin, "--socket", daemon.sock, *args], capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def need_root():
    if os.geteuid() != 0:
        print("skip: needs root (thpswapd and userfaultfd)")
        sys.exit(77)


# Every test's findings: check() notes one, verdict() prints them all.
failures = []


def check(cond, what):
    """Note the failure @what unless @cond; @cond."""
    if not cond:
        failures.append(what)
    return cond


def verdict(name):
    """Print every failure noted and the verdict; the exit status."""
    for f in failures:
        print("FAIL:", f)
    print(f"{'FAIL' if failures else 'PASS'}: {name}: {len(failures)} problem(s)")
    return 1 if failures else 0


def terminate(proc, timeout=30):
    """SIGTERM @proc (a Popen) and wait; SIGKILL after @timeout s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def unit_values(path, key):
    """The values of every @key= line of a unit file, in order."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(key + "="):
                out.append(line.split("=", 1)[1].split())
    return out
