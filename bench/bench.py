#!/usr/bin/env python3
"""Paired benchmark of OCI runtimes (bulkhead against runc, crun, youki).

Driven by bench/run.sh, which builds bulkhead, installs the peers and the
bundles; this file does the measuring. See docs/benchmark.md.

Method, in short:
  * every call is started with posix_spawn and reaped with wait4; wall time is
    perf_counter_ns from just before the spawn to the reap, CPU time is
    ru_utime + ru_stime of the wait4 rusage, i.e. the runtime process plus
    every descendant it reaped itself (for `run`: the container's init);
  * the harness is a child subreaper, so container processes orphaned by a
    detached runtime are reaped by it at once (as a shim would); their CPU
    time is not charged to the runtime;
  * runtimes take turns: iteration i runs them in an order rotated by i
    (A B C, B C A, C A B, ...), so each one is equally often first; ratios are
    the median over iterations of the per-iteration ratio (paired), which is
    what stays stable on a shared, noisy machine;
  * crun runs through a wrapper on hybrid-cgroup hosts (bench/run.sh passes
    bench/mntns-exec.c, built there; bench/crun-hybrid-wrap.sh where that
    cannot be built); the wrapper's own cost is measured in the same run
    (`wrap /bin/true` against `/bin/true`, paired) and subtracted per wrapped
    call ("crun (net)").
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as _dt
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
RUN_M = ["wall_ms", "cpu_ms"]
SPLIT_M = [f"{c}_{m}" for c in ("create", "start", "delete") for m in ("wall_ms", "cpu_ms")] + [
    "total_wall_ms", "total_cpu_ms"]


# --------------------------------------------------------------------------
# Process spawning and reaping
# --------------------------------------------------------------------------


class Result:
    __slots__ = ("pid", "argv", "start", "end", "status", "ru", "err", "timed_out", "_errfd")

    def __init__(self, pid, argv, start):
        self.pid = pid
        self.argv = argv
        self.start = start
        self.end = None
        self.status = None
        self.ru = None
        self.err = ""
        self.timed_out = False

    @property
    def ok(self):
        return (
            not self.timed_out
            and self.status is not None
            and os.WIFEXITED(self.status)
            and os.WEXITSTATUS(self.status) == 0
        )

    @property
    def wall_ms(self):
        return (self.end - self.start) / 1e6

    @property
    def cpu_ms(self):
        return (self.ru.ru_utime + self.ru.ru_stime) * 1e3

    def describe(self):
        if self.timed_out:
            how = "timed out (killed)"
        elif self.status is None:
            how = "not reaped"
        elif os.WIFEXITED(self.status):
            how = f"exit {os.WEXITSTATUS(self.status)}"
        else:
            how = f"signal {os.WTERMSIG(self.status)}"
        return f"{' '.join(self.argv)}: {how}: {self.err.strip()[:400]}"


class Reaper:
    """One thread reaps every child (wait4(-1)) and records its rusage.

    Tracked pids (the runtime calls) wake their waiter; any other pid is an
    orphaned container process reparented to us (we are a subreaper)."""

    def __init__(self):
        self.lock = threading.Condition()
        self.done: dict[int, tuple[int, int, object]] = {}
        self.tracked: set[int] = set()
        self.orphans_reaped = 0
        # CPU time (ms) of each orphan, in the order reaped: the processes a
        # runtime left behind (container inits, detached helpers).
        self.orphan_cpu: list[float] = []
        self.kick = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while True:
            self.kick.clear()
            try:
                pid, status, ru = os.wait4(-1, 0)
            except ChildProcessError:
                self.kick.wait(0.05)
                continue
            except InterruptedError:
                continue
            t = time.perf_counter_ns()
            with self.lock:
                if pid in self.tracked:
                    self.done[pid] = (t, status, ru)
                    self.lock.notify_all()
                else:
                    self.orphans_reaped += 1
                    self.orphan_cpu.append((ru.ru_utime + ru.ru_stime) * 1000)

    def spawn(self, argv, stdout_path=None, env=None):
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        out = os.open(stdout_path or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        nul = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        fa = [
            (os.POSIX_SPAWN_DUP2, nul, 0),
            (os.POSIX_SPAWN_DUP2, out, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
        ]
        with self.lock:
            start = time.perf_counter_ns()
            pid = os.posix_spawn(argv[0], argv, env if env is not None else os.environ,
                                 file_actions=fa, setpgroup=0)
            self.tracked.add(pid)
        self.kick.set()
        os.close(err_w)
        os.close(out)
        os.close(nul)
        r = Result(pid, argv, start)
        r._errfd = err_r  # type: ignore[attr-defined]
        return r

    def wait(self, results, timeout):
        """Waits for all results; kills the ones still running at timeout."""
        deadline = time.monotonic() + timeout
        pending = {r.pid: r for r in results}
        # stderr pipes are drained after exit (runtimes write little; a
        # pipe holds 64 KiB).
        with self.lock:
            while True:
                for pid in list(pending):
                    if pid in self.done:
                        t, status, ru = self.done.pop(pid)
                        self.tracked.discard(pid)
                        r = pending.pop(pid)
                        r.end, r.status, r.ru = t, status, ru
                if not pending:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    for r in pending.values():
                        r.timed_out = True
                        try:
                            os.killpg(r.pid, signal.SIGKILL)
                        except OSError:
                            pass
                        try:
                            os.kill(r.pid, signal.SIGKILL)
                        except OSError:
                            pass
                    deadline = time.monotonic() + 10
                    self.lock.wait(1)
                    continue
                self.lock.wait(min(left, 1.0))
        for r in results:
            fd = r._errfd  # type: ignore[attr-defined]
            try:
                os.set_blocking(fd, False)
                chunks = []
                while True:
                    try:
                        b = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    if not b:
                        break
                    chunks.append(b)
                r.err = b"".join(chunks).decode(errors="replace")
            finally:
                os.close(fd)
        return results


# --------------------------------------------------------------------------
# Runtimes
# --------------------------------------------------------------------------


class Runtime:
    def __init__(self, name, argv, root, bundles, wrapped=False, letter="x"):
        self.name = name
        self.argv = list(argv)
        self.root = root
        self.bundles = bundles  # {"true": path, "sleep": path}
        self.wrapped = wrapped
        self.letter = letter

    def cmd(self, *args):
        return self.argv + ["--root", self.root] + list(args)


class Bench:
    def __init__(self, args):
        self.args = args
        self.reaper = Reaper()
        self.tag = secrets.token_hex(2)
        self.samples: dict = {}  # scenario -> metric -> runtime -> [values]
        self.errors: dict = {}  # runtime -> [messages]
        self.extra: dict = {}
        self.timeout = args.timeout
        self.counter = 0
        self.live: dict[str, set] = {}  # runtime -> ids possibly alive

    # -- helpers ---------------------------------------------------------

    def new_id(self, rt, scen):
        self.counter += 1
        # fixed width: no id is a prefix of another
        return f"bb{self.tag}{rt.letter}{scen}{self.counter:05d}"

    def record(self, scen, metric, rt, value):
        self.samples.setdefault(scen, {}).setdefault(metric, {}).setdefault(rt, []).append(value)

    def record_none(self, scen, metrics, rt):
        """A failed iteration keeps its slot (None), so that the i-th values
        of two runtimes still come from the same round."""
        for m in metrics:
            self.record(scen, m, rt, None)

    def error(self, rt, msg):
        lst = self.errors.setdefault(rt, [])
        if len(lst) < 20:
            lst.append(msg)
        print(f"  ! {rt}: {msg}", file=sys.stderr, flush=True)

    def call(self, argv, timeout=None):
        r = self.reaper.spawn(argv)
        self.reaper.wait([r], timeout or self.timeout)
        return r

    def calls(self, argvs, timeout=None):
        rs = [self.reaper.spawn(a) for a in argvs]
        self.reaper.wait(rs, timeout or self.timeout)
        return rs

    def force_delete(self, rt, cid):
        r = self.call(rt.cmd("delete", "--force", cid))
        self.live.get(rt.name, set()).discard(cid)
        return r

    def state(self, rt, cid):
        out = Path(self.args.workdir) / "state.out"
        r = self.reaper.spawn(rt.cmd("state", cid), stdout_path=str(out))
        self.reaper.wait([r], self.timeout)
        if not r.ok:
            return None
        try:
            return json.loads(out.read_text())
        except ValueError:
            return None

    def order(self, rts, i):
        k = i % len(rts)
        return rts[k:] + rts[:k]

    def warm_and_iters(self):
        return self.args.warmup, self.args.n

    # -- scenarios -------------------------------------------------------

    def baseline_wrapper(self, wrap):
        """`wrap /bin/true` against `/bin/true`, paired."""
        print(f"== wrapper cost ({os.path.basename(wrap)} /bin/true vs /bin/true)", flush=True)
        pair = [("true", ["/bin/true"]), ("wrap-true", [wrap, "/bin/true"])]
        w, n = self.warm_and_iters()
        n = max(n, 20)
        for i in range(w + n):
            for name, argv in self.order(pair, i):
                r = self.call(argv)
                if not r.ok:
                    self.error(name, r.describe())
                    if i >= w:
                        self.record_none("wrapper", ["wall_ms", "cpu_ms"], name)
                    continue
                if i >= w:
                    self.record("wrapper", "wall_ms", name, r.wall_ms)
                    self.record("wrapper", "cpu_ms", name, r.cpu_ms)

    def scen_run(self, rts):
        print("== run /bin/true (create+start+wait+delete)", flush=True)
        w, n = self.warm_and_iters()
        for i in range(w + n):
            for rt in self.order(rts, i):
                cid = self.new_id(rt, "r")
                r = self.call(rt.cmd("run", "--bundle", rt.bundles["true"], cid))
                if not r.ok:
                    self.error(rt.name, "run: " + r.describe())
                    self.force_delete(rt, cid)
                    if i >= w:
                        self.record_none("run", RUN_M, rt.name)
                    continue
                if i >= w:
                    self.record("run", "wall_ms", rt.name, r.wall_ms)
                    self.record("run", "cpu_ms", rt.name, r.cpu_ms)

    def scen_split(self, rts):
        print("== create / start / delete", flush=True)
        w, n = self.warm_and_iters()
        pidfile = str(Path(self.args.workdir) / "split.pid")
        for i in range(w + n):
            for rt in self.order(rts, i):
                cid = self.new_id(rt, "s")
                try:
                    os.unlink(pidfile)
                except FileNotFoundError:
                    pass
                c = self.call(rt.cmd("create", "--pid-file", pidfile, "--bundle", rt.bundles["true"], cid))
                if not c.ok:
                    self.error(rt.name, "create: " + c.describe())
                    if i >= w:
                        self.record_none("split", SPLIT_M, rt.name)
                    self.force_delete(rt, cid)
                    continue
                pidfd = pid = None
                try:
                    pid = int(Path(pidfile).read_text().strip())
                    pidfd = os.pidfd_open(pid)
                except (OSError, ValueError):
                    pidfd = None  # already gone
                s = self.call(rt.cmd("start", cid))
                if not s.ok:
                    self.error(rt.name, "start: " + s.describe())
                    if i >= w:
                        self.record_none("split", SPLIT_M, rt.name)
                    if pidfd is not None:
                        os.close(pidfd)
                    self.force_delete(rt, cid)
                    continue
                if pidfd is not None:
                    import select

                    p = select.poll()
                    p.register(pidfd, select.POLLIN)
                    if not p.poll(self.timeout * 1000):
                        self.error(rt.name, f"split: container {cid} did not exit")
                    os.close(pidfd)
                # the init may be our (subreaper's) child: let the reaper
                # collect it so the runtime sees it stopped, not a zombie
                for _ in range(200 if pid else 0):
                    try:
                        st = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
                    except (OSError, IndexError):
                        break
                    if st != "Z":
                        break
                    time.sleep(0.001)
                d = self.call(rt.cmd("delete", cid))
                if not d.ok:
                    self.error(rt.name, "delete: " + d.describe())
                    if i >= w:
                        self.record_none("split", SPLIT_M, rt.name)
                    self.force_delete(rt, cid)
                    continue
                if i >= w:
                    for name, r in (("create", c), ("start", s), ("delete", d)):
                        self.record("split", f"{name}_wall_ms", rt.name, r.wall_ms)
                        self.record("split", f"{name}_cpu_ms", rt.name, r.cpu_ms)
                    self.record("split", "total_wall_ms", rt.name, c.wall_ms + s.wall_ms + d.wall_ms)
                    self.record("split", "total_cpu_ms", rt.name, c.cpu_ms + s.cpu_ms + d.cpu_ms)

    def scen_exec(self, rts):
        print("== exec true into a running container", flush=True)
        ids = {}
        for rt in rts:
            cid = self.new_id(rt, "e")
            r = self.call(rt.cmd("run", "--detach", "--bundle", rt.bundles["sleep"], cid))
            if not r.ok:
                self.error(rt.name, "exec setup (run -d): " + r.describe())
                self.force_delete(rt, cid)
                continue
            self.live.setdefault(rt.name, set()).add(cid)
            ids[rt.name] = cid
        act = [rt for rt in rts if rt.name in ids]
        w, n = self.warm_and_iters()
        try:
            for i in range(w + n):
                for rt in self.order(act, i):
                    r = self.call(rt.cmd("exec", ids[rt.name], "/bin/true"))
                    if not r.ok:
                        self.error(rt.name, "exec: " + r.describe())
                        if i >= w:
                            self.record_none("exec", RUN_M, rt.name)
                        continue
                    if i >= w:
                        self.record("exec", "wall_ms", rt.name, r.wall_ms)
                        self.record("exec", "cpu_ms", rt.name, r.cpu_ms)
        finally:
            for rt in act:
                d = self.force_delete(rt, ids[rt.name])
                if not d.ok:
                    self.error(rt.name, "exec teardown (delete --force): " + d.describe())

    def descendants(self):
        """Processes whose parent chain reaches this harness (orphaned
        container processes and any helper a runtime leaves behind are
        reparented to us, the subreaper)."""
        me = os.getpid()
        parent = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parent[int(d)] = ppid
        out = []
        for pid in parent:
            p, hops = pid, 0
            while p in parent and p != me and p > 1 and hops < 64:
                p = parent[p]
                hops += 1
            if p == me and pid != me:
                out.append(pid)
        # our own threads are not in /proc listing as pids; nothing else to drop
        return out

    def resident(self, rt, cids, label, exclude=()):
        pids = [p for p in self.descendants() if p not in exclude]
        pss = rss = uss = 0
        n = 0
        comms = {}
        for pid in pids:
            try:
                txt = Path(f"/proc/{pid}/smaps_rollup").read_text()
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            n += 1
            comms[comm] = comms.get(comm, 0) + 1
            for line in txt.splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith(("Private_Clean:", "Private_Dirty:")):
                    uss += int(line.split()[1])
        k = max(len(cids), 1)
        self.extra.setdefault("resident", {}).setdefault(label, {})[rt.name] = {
            "containers": len(cids),
            "processes": n,
            "processes_per_container": n / k,
            "pss_kib_per_container": pss / k,
            "rss_kib_per_container": rss / k,
            "uss_kib_per_container": uss / k,
            "comms": comms,
        }

    def scen_concurrent(self, rts):
        m = self.args.containers
        rounds = self.args.rounds
        print(f"== {m} x run -d sleep, at once, then {m} x delete --force, at once ({rounds} rounds)", flush=True)
        for i in range(rounds):
            for rt in self.order(rts, i):
                ids = [self.new_id(rt, "c") for _ in range(m)]
                self.live.setdefault(rt.name, set()).update(ids)
                o0 = self.settled_orphans()
                t0 = time.perf_counter_ns()
                rs = self.calls([rt.cmd("run", "--detach", "--bundle", rt.bundles["sleep"], c) for c in ids])
                t_ret = max((r.end for r in rs if r.end), default=t0)
                bad = [r for r in rs if not r.ok]
                for r in bad[:3]:
                    self.error(rt.name, "concurrent run -d: " + r.describe())
                # all must say running
                states = {}
                for c in ids:
                    s = self.state(rt, c)
                    states[c] = s.get("status") if s else None
                t_run = time.perf_counter_ns()
                running = sum(1 for v in states.values() if v == "running")
                if running != m:
                    self.error(rt.name, f"concurrent: {running}/{m} running after all returned: "
                               + str(sorted({str(v) for v in states.values()})))
                if i == 0:
                    self.resident(rt, [c for c, v in states.items() if v == "running"], "concurrent")
                d0 = time.perf_counter_ns()
                ds = self.calls([rt.cmd("delete", "--force", c) for c in ids])
                d_end = max((r.end for r in ds if r.end), default=d0)
                dbad = [r for r in ds if not r.ok]
                for r in dbad[:3]:
                    self.error(rt.name, "concurrent delete --force: " + r.describe())
                self.live[rt.name].difference_update(ids)
                # What the calls left behind and the harness reaped: the
                # container inits (their setup before the program's execve
                # is the runtime's work) and any detached helper (crun's
                # `run -d` does its work in an orphaned grandchild).
                left = self.reaper.orphan_cpu[o0:self.settled_orphans()]
                if bad:
                    self.record_none("concurrent", ["start_wall_s", "start_cpu_ms_total",
                                                    "start_cpu_ms_tree", "start_until_state_s"], rt.name)
                else:
                    self.record("concurrent", "start_wall_s", rt.name, (t_ret - t0) / 1e9)
                    self.record("concurrent", "start_cpu_ms_total", rt.name, sum(r.cpu_ms for r in rs))
                    self.record("concurrent", "start_cpu_ms_tree", rt.name,
                                sum(r.cpu_ms for r in rs) + sum(left))
                    self.record("concurrent", "start_until_state_s", rt.name, (t_run - t0) / 1e9)
                if dbad:
                    self.record_none("concurrent", ["delete_wall_s", "delete_cpu_ms_total"], rt.name)
                else:
                    self.record("concurrent", "delete_wall_s", rt.name, (d_end - d0) / 1e9)
                    self.record("concurrent", "delete_cpu_ms_total", rt.name, sum(r.cpu_ms for r in ds))
                self.check_leftovers(rt, f"concurrent round {i}")

    def settled_orphans(self, quiet_s=0.3, limit_s=10):
        """The number of orphans reaped so far, once none has been reaped
        for `quiet_s` (killed inits take a moment to be reparented)."""
        n, since, end = len(self.reaper.orphan_cpu), time.monotonic(), time.monotonic() + limit_s
        while time.monotonic() < end:
            time.sleep(0.05)
            k = len(self.reaper.orphan_cpu)
            if k != n:
                n, since = k, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                break
        return n

    def timed_rss(self, argv):
        """Peak RSS through /usr/bin/time (a forked, small parent): the
        children we posix_spawn share our address space until exec, so
        their ru_maxrss starts at ours."""
        out = Path(self.args.workdir) / "rss.out"
        r = self.call(["/usr/bin/time", "-f", "%M", "-o", str(out)] + argv)
        if not r.ok:
            return r, None
        try:
            return r, int(out.read_text().split()[-1])
        except (OSError, ValueError, IndexError):
            return r, None

    def scen_single(self, rts):
        """Resident cost of one container, alone: no other container runs
        (USS and PSS depend on how many processes share the busybox pages)."""
        for rt in rts:
            cid = self.new_id(rt, "1")
            r = self.call(rt.cmd("run", "--detach", "--bundle", rt.bundles["sleep"], cid))
            if not r.ok:
                self.error(rt.name, "single (run -d): " + r.describe())
            else:
                self.live.setdefault(rt.name, set()).add(cid)
                time.sleep(0.2)  # let a detached runtime's helpers settle
                self.resident(rt, [cid], "single")
            self.force_delete(rt, cid)
            self.check_leftovers(rt, "single")

    def scen_rss(self, rts):
        self.scen_single(rts)
        k = self.args.rss_runs
        print(f"== peak RSS (/usr/bin/time -f %M) of run, create, exec ({k} runs)", flush=True)
        ids = {}
        for rt in rts:
            cid = self.new_id(rt, "x")
            r = self.call(rt.cmd("run", "--detach", "--bundle", rt.bundles["sleep"], cid))
            if r.ok:
                ids[rt.name] = cid
                self.live.setdefault(rt.name, set()).add(cid)
            else:
                self.error(rt.name, "rss setup (run -d): " + r.describe())
        try:
            for i in range(k):
                for rt in self.order(rts, i):
                    cid = self.new_id(rt, "m")
                    r, v = self.timed_rss(rt.cmd("run", "--bundle", rt.bundles["true"], cid))
                    if v is None:
                        self.error(rt.name, "rss run: " + r.describe())
                        self.force_delete(rt, cid)
                    self.record("rss", "run_kib", rt.name, v)
                    cid = self.new_id(rt, "n")
                    r, v = self.timed_rss(rt.cmd("create", "--bundle", rt.bundles["true"], cid))
                    if v is None:
                        self.error(rt.name, "rss create: " + r.describe())
                    self.record("rss", "create_kib", rt.name, v)
                    self.force_delete(rt, cid)
                    if rt.name in ids:
                        r, v = self.timed_rss(rt.cmd("exec", ids[rt.name], "/bin/true"))
                        if v is None:
                            self.error(rt.name, "rss exec: " + r.describe())
                        self.record("rss", "exec_kib", rt.name, v)
        finally:
            for rt in rts:
                if rt.name in ids:
                    self.force_delete(rt, ids[rt.name])

    # -- leftovers -------------------------------------------------------

    def check_leftovers(self, rt, when):
        deadline = time.monotonic() + 3
        while True:
            left = self.leftovers(rt)
            if not any(left.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if any(left.values()):
            self.error(rt.name, f"leftovers after {when}: " + json.dumps({k: v[:5] for k, v in left.items() if v}))
            self.extra.setdefault("leftovers", {}).setdefault(rt.name, []).append({"when": when, **left})

    def leftovers(self, rt):
        prefix = f"bb{self.tag}{rt.letter}"
        out = {"state": [], "cgroups": [], "mounts": [], "processes": []}
        try:
            out["state"] = sorted(e for e in os.listdir(rt.root))
        except FileNotFoundError:
            pass
        # crun keeps a few non-container files in its root
        out["state"] = [e for e in out["state"] if e.startswith("bb")]
        for h in Path("/sys/fs/cgroup").iterdir():
            try:
                for dirpath, dirnames, _ in os.walk(h):
                    for d in dirnames:
                        if prefix in d:
                            out["cgroups"].append(os.path.join(dirpath, d))
                    if dirpath.count("/") > 8:
                        dirnames[:] = []
            except OSError:
                pass
        try:
            # run.sh mounts the tmpfs holding every runtime's state root, and
            # the one holding crun's mount namespace (ns, ns/mnt)
            own = {os.path.join(self.args.workdir, d) for d in ("roots", "ns", "ns/mnt")}
            for line in Path("/proc/self/mountinfo").read_text().splitlines():
                point = line.split()[4]
                if point in own:
                    continue
                if prefix in line or self.args.workdir in line:
                    out["mounts"].append(point)
        except OSError:
            pass
        for pid in self.descendants():
            try:
                cg = Path(f"/proc/{pid}/cgroup").read_text()
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if prefix in cg or prefix in cmd:
                out["processes"].append(f"{pid}:{cmd[:60]}")
        return out

    def cleanup(self, rts):
        for rt in rts:
            try:
                ids = [e for e in os.listdir(rt.root) if e.startswith("bb")]
            except FileNotFoundError:
                ids = []
            ids = set(ids) | self.live.get(rt.name, set())
            if ids:
                self.calls([rt.cmd("delete", "--force", c) for c in ids], timeout=30)


# --------------------------------------------------------------------------
# Binary size
# --------------------------------------------------------------------------


def binary_info(path):
    real = os.path.realpath(path)
    size = os.stat(real).st_size
    libs = []
    try:
        out = subprocess.run(["ldd", real], capture_output=True, text=True).stdout
    except OSError:
        out = ""
    static = "not a dynamic executable" in out or "statically linked" in out
    for line in out.splitlines():
        cand = line.split("=>", 1)[1].split()[0] if "=>" in line else (line.split() or [""])[0]
        if cand.startswith("/"):
            rp = os.path.realpath(cand)
            try:
                libs.append({"name": os.path.basename(cand), "bytes": os.stat(rp).st_size})
            except OSError:
                pass
    return {
        "path": real,
        "bytes": size,
        "static": static or not libs,
        "libs": libs,
        "bytes_with_libs": size + sum(x["bytes"] for x in libs),
    }


# --------------------------------------------------------------------------
# Statistics and report
# --------------------------------------------------------------------------


def summary(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def machine_info():
    info = {"kernel": platform.release(), "cpus": os.cpu_count()}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                info["os"] = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["mem_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        info["cgroups"] = "hybrid" if Path("/sys/fs/cgroup/unified").is_dir() else (
            "v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "v1")
    except OSError:
        pass
    return info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runtime", action="append", default=[],
                    help="NAME=ARGV (space-separated), may repeat; wrapped runtimes: NAME=wrap:ARGV")
    ap.add_argument("--bundle", action="append", default=[],
                    help="NAME:KIND=DIR, KIND in true,sleep; NAME '*' is the default")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--wrapper", default=None)
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--rss-runs", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--scenarios", default="wrapper,run,split,exec,concurrent")
    ap.add_argument("--json", required=True)
    ap.add_argument("--binary", action="append", default=[], help="NAME=PATH for the size table")
    ap.add_argument("--version", action="append", default=[], help="NAME=VERSION STRING")
    ap.add_argument("--note", action="append", default=[])
    ap.add_argument("--tag-file", default=None, help="write the id tag here (for cleanup)")
    args = ap.parse_args()

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")

    bundles = {}
    for b in args.bundle:
        name, rest = b.split(":", 1)
        kind, path = rest.split("=", 1)
        bundles.setdefault(name, {})[kind] = path
    rts = []
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    for spec in args.runtime:
        name, argv = spec.split("=", 1)
        wrapped = argv.startswith("wrap:")
        if wrapped:
            argv = f"{args.wrapper} " + argv[len("wrap:"):]
        root = os.path.join(args.workdir, "roots", name)
        os.makedirs(root, exist_ok=True)
        bd = dict(bundles.get("*", {}))
        bd.update(bundles.get(name, {}))
        rts.append(Runtime(name, argv.split(), root, bd, wrapped, next(letters)))

    b = Bench(args)
    if args.tag_file:
        Path(args.tag_file).write_text(b.tag)
    started = _dt.datetime.now(_dt.timezone.utc)
    loads = [os.getloadavg()]

    def on_signal(sig, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    scen = args.scenarios.split(",")
    interrupted = False
    try:
        if "wrapper" in scen and args.wrapper and any(rt.wrapped for rt in rts):
            b.baseline_wrapper(args.wrapper)
        for name, fn in (("run", b.scen_run), ("split", b.scen_split), ("exec", b.scen_exec),
                         ("concurrent", b.scen_concurrent), ("rss", b.scen_rss)):
            if name in scen:
                fn(rts)
                loads.append(os.getloadavg())
                for rt in rts:
                    b.check_leftovers(rt, name)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: cleaning up", file=sys.stderr)
    finally:
        b.cleanup(rts)
    finished = _dt.datetime.now(_dt.timezone.utc)

    res = {
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "interrupted": interrupted,
        "machine": machine_info(),
        "loadavg": loads,
        "params": {"n": args.n, "warmup": args.warmup, "rounds": args.rounds,
                   "containers": args.containers, "timeout_s": args.timeout,
                   "wrapper": os.path.basename(args.wrapper) if args.wrapper else None},
        "runtimes": [{"name": rt.name, "argv": rt.argv, "wrapped": rt.wrapped, "bundles": rt.bundles} for rt in rts],
        "versions": dict(v.split("=", 1) for v in args.version),
        "notes": args.note,
        "samples": b.samples,
        "summary": {s: {m: {rt: summary(v) for rt, v in d.items()} for m, d in ms.items()}
                    for s, ms in b.samples.items()},
        "errors": b.errors,
        "extra": b.extra,
        "orphans_reaped": b.reaper.orphans_reaped,
        "binaries": {n: binary_info(p) for n, p in (x.split("=", 1) for x in args.binary)},
    }
    # wrapper cost: median of paired differences
    w = b.samples.get("wrapper")
    if w:
        res["wrapper_cost"] = {}
        for m in ("wall_ms", "cpu_ms"):
            a, t = w[m].get("wrap-true", []), w[m].get("true", [])
            d = [x - y for x, y in zip(a, t) if x is not None and y is not None]
            if d:
                res["wrapper_cost"][m] = statistics.median(d)
    Path(args.json).write_text(json.dumps(res, indent=1))
    print(f"wrote {args.json}")
    if b.errors:
        print("errors:", json.dumps(b.errors, indent=1)[:4000], file=sys.stderr)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
