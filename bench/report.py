#!/usr/bin/env python3
"""Turns a bench.py JSON file into a Markdown table and an SVG bar chart.

    report.py RESULTS.json --md OUT.md --svg OUT.svg

Ratios are paired: the median over iterations of A_i / B_i, where A_i and
B_i were measured in the same round (see bench.py). crun's figures are
shown raw and "net", i.e. minus the measured cost of its hybrid-cgroup
wrapper (mntns-exec, or crun-hybrid-wrap.sh in older results) times the
number of wrapped calls in the figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
from html import escape

# (scenario, metric, label, unit, wrapped calls per sample, subtract wrapper wall?)
FIGURES = [
    ("run", "wall_ms", "`run` /bin/true, wall", "ms", 1, True),
    ("run", "cpu_ms", "`run` /bin/true, cpu", "ms", 1, True),
    ("split", "create_wall_ms", "create, wall", "ms", 1, True),
    ("split", "create_cpu_ms", "create, cpu", "ms", 1, True),
    ("split", "start_wall_ms", "start, wall", "ms", 1, True),
    ("split", "start_cpu_ms", "start, cpu", "ms", 1, True),
    ("split", "delete_wall_ms", "delete (stopped), wall", "ms", 1, True),
    ("split", "delete_cpu_ms", "delete (stopped), cpu", "ms", 1, True),
    ("split", "total_cpu_ms", "create+start+delete, cpu", "ms", 3, True),
    ("exec", "wall_ms", "`exec true`, wall", "ms", 1, True),
    ("exec", "cpu_ms", "`exec true`, cpu", "ms", 1, True),
    ("concurrent", "start_wall_s", "50 × `run -d` at once, until all returned, wall", "s", 0, False),
    ("concurrent", "start_until_state_s", "… until `state` said running for all, wall", "s", 0, False),
    ("concurrent", "start_cpu_ms_total", "50 × `run -d`, cpu (sum)", "ms", "M", True),
    ("concurrent", "start_cpu_ms_tree", "… cpu (sum) with what they left behind (inits, helpers)", "ms", "M", True),
    ("concurrent", "delete_wall_s", "50 × `delete --force` at once, wall", "s", 0, False),
    ("concurrent", "delete_cpu_ms_total", "50 × `delete --force`, cpu (sum)", "ms", "M", True),
    ("rss", "run_kib", "peak RSS of `run`", "KiB", 0, False),
    ("rss", "create_kib", "peak RSS of `create`", "KiB", 0, False),
    ("rss", "exec_kib", "peak RSS of `exec`", "KiB", 0, False),
]

CHART = [
    ("run", "wall_ms", "run, wall"),
    ("run", "cpu_ms", "run, cpu"),
    ("split", "create_cpu_ms", "create, cpu"),
    ("split", "start_cpu_ms", "start, cpu"),
    ("split", "delete_cpu_ms", "delete, cpu"),
    ("exec", "wall_ms", "exec, wall"),
    ("exec", "cpu_ms", "exec, cpu"),
    ("concurrent", "start_wall_s", "50 × run -d, wall"),
    ("concurrent", "delete_wall_s", "50 × delete -f, wall"),
    ("rss", "run_kib", "peak RSS (run)"),
    ("size", "bytes_with_libs", "binary + libs"),
]

COLORS = {
    "bulkhead": "#d9480f",
    "bulkhead-hardened": "#f59f00",
    "runc": "#868e96",
    "crun": "#1c7ed6",
    "youki": "#37b24d",
}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


class Data:
    def __init__(self, res):
        self.res = res
        self.wrapped = {r["name"] for r in res["runtimes"] if r["wrapped"]}
        self.names = [r["name"] for r in res["runtimes"]]
        self.wc = res.get("wrapper_cost", {})

    def wrapper_cost(self, metric, calls, sub):
        if calls == "M":
            calls = self.res["params"]["containers"]
        if not sub or not calls:
            return 0.0
        if "wall" in metric:
            c = self.wc.get("wall_ms", 0.0)
        elif "cpu" in metric:
            c = self.wc.get("cpu_ms", 0.0)
        else:
            return 0.0
        if metric.endswith("_s"):
            c /= 1000.0
        return c * calls

    def values(self, scen, metric, rt, net=True, calls=1, sub=True):
        xs = self.res["samples"].get(scen, {}).get(metric, {}).get(rt)
        if xs is None:
            return None
        if net and rt in self.wrapped:
            c = self.wrapper_cost(metric, calls, sub)
            xs = [None if x is None else x - c for x in xs]
        return xs

    def label(self, text):
        return text.replace("50 ×", f"{self.res['params']['containers']} ×").replace(
            "50 times for the 50-container", f"{self.res['params']['containers']} times for the {self.res['params']['containers']}-container")

    def paired(self, scen, metric, a, b, calls=1, sub=True):
        """Median of per-iteration A/B; sub=False: crun with its wrapper."""
        xa = self.values(scen, metric, a, calls=calls, sub=sub)
        xb = self.values(scen, metric, b, calls=calls, sub=sub)
        if not xa or not xb:
            return None
        rs = [x / y for x, y in zip(xa, xb) if x is not None and y is not None and y > 0]
        return statistics.median(rs) if rs else None

    def size(self, rt, key="bytes_with_libs"):
        b = self.res.get("binaries", {}).get(rt.replace("-hardened", ""))
        return b[key] if b else None


def fmt(v, unit):
    if v is None:
        return "—"
    if unit == "s":
        return f"{v:.2f}"
    if unit == "KiB":
        return f"{v:.0f}"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def fr(r):
    return "—" if r is None else f"**{r:.2f}**"


def write_md(d: Data, path):
    res = d.res
    m = res["machine"]
    names = d.names
    peers = [p for p in ("runc", "crun", "youki") if p in names]
    subjects = [s for s in ("bulkhead", "bulkhead-hardened") if s in names]
    L = []
    L.append(f"# bulkhead benchmark, {res['started'][:10]}")
    L.append("")
    L.append("Generated by `bench/run.sh` (method: [docs/benchmark.md](../benchmark.md)). "
             "**Only the ratios are meant to be quoted**: the machine is shared and absolute times "
             "move by up to 2x between runs.")
    L.append("")
    L.append(f"* machine: {m.get('os', '?')}, kernel {m.get('kernel')}, {m.get('cpus')} CPUs "
             f"({m.get('cpu', '?')}), {m.get('mem_gib', '?')} GiB, cgroups {m.get('cgroups', '?')}")
    loads = ", ".join(f"{la[0]:.1f}" for la in res["loadavg"])
    L.append(f"* run: {res['started']} → {res['finished']}; 1-minute load average at the start and after "
             f"each scenario: {loads}")
    p = res["params"]
    L.append(f"* iterations: {p['n']} per figure after {p['warmup']} warm-up, runtimes alternated "
             f"(order rotated each iteration); concurrent test: {p['rounds']} round(s) of {p['containers']} containers")
    for k, v in res.get("versions", {}).items():
        L.append(f"* {k}: `{v}`")
    if res.get("wrapper_cost"):
        wc = res["wrapper_cost"]
        w = res["summary"].get("wrapper", {})
        if p.get("wrapper") == "mntns-exec":
            how = ("crun runs in a private mount namespace in which `/dev/null` hides "
                   "`/sys/fs/cgroup/unified/cgroup.controllers` (hybrid-cgroup workaround), entered for each call "
                   "by `mntns-exec` (bench/mntns-exec.c: `setns` and `execve`, no C library)")
        else:
            how = "crun runs through `bench/crun-hybrid-wrap.sh` (hybrid-cgroup workaround)"
        L.append(f"* {how}. Its own cost, "
                 f"median of paired differences `wrap /bin/true` − `/bin/true`: **{wc.get('wall_ms', 0):.2f} ms wall, "
                 f"{wc.get('cpu_ms', 0):.2f} ms cpu** per call (`/bin/true` alone: "
                 f"{w.get('wall_ms', {}).get('true', {}).get('median', 0):.2f} ms wall). "
                 "\"crun (net)\" subtracts it once per wrapped call (50 times for the 50-container cpu sums; "
                 "not from the concurrent wall times, where the calls overlap).")
        L[-1] = d.label(L[-1])
    if "bulkhead-hardened" in names:
        L.append("* `bulkhead` uses the same `runc spec` config as the peers; `bulkhead-hardened` uses the config "
                 "written by `bulkhead spec` (bulkhead's hardened defaults: seccomp allow-list, reduced "
                 "capabilities, masked paths, …), same rootfs and args.")
    for n in res.get("notes", []):
        L.append(f"* {n}")
    if res.get("interrupted"):
        L.append("* **the run was interrupted; figures are partial**")
    L.append("")

    # ratios
    L.append("## Paired ratios (median of per-iteration ratios; < 1 means bulkhead is faster / smaller)")
    L.append("")
    if d.wrapped:
        L.append("Against crun, the bold figure uses crun net of its wrapper; the figure in parentheses uses "
                 "crun with the wrapper (its cost not subtracted). The true ratio lies between the two: the "
                 "wrapper's cost is a median, and subtracting it from single noisy samples can overshoot.")
        L.append("")
    cols = []
    for s in subjects:
        for pr in peers:
            cols.append((s, pr))
    if "bulkhead-hardened" in names and "bulkhead" in names:
        cols.append(("bulkhead-hardened", "bulkhead"))

    def colname(a, b):
        b2 = "crun (net)" if b in d.wrapped else b
        return f"{a} ÷ {b2}"

    L.append("| figure | " + " | ".join(colname(a, b) for a, b in cols) + " |")
    L.append("|---" * (len(cols) + 1) + "|")
    for scen, metric, label, unit, calls, sub in FIGURES:
        row = [d.paired(scen, metric, a, b, calls, sub) for a, b in cols]
        if all(r is None for r in row):
            continue
        cells = []
        for (a, b), r in zip(cols, row):
            c = fr(r)
            if b in d.wrapped and r is not None and sub and calls:
                raw = d.paired(scen, metric, a, b, calls, False)
                if raw is not None:
                    c += f" ({raw:.2f})"
            cells.append(c)
        L.append(f"| {d.label(label)} | " + " | ".join(cells) + " |")
    # resident and size: single values, plain ratios
    rez = res.get("extra", {}).get("resident", {}).get("concurrent", {})
    if rez:
        row = []
        for a, b in cols:
            ra, rb = rez.get(a), rez.get(b)
            row.append(ra["pss_kib_per_container"] / rb["pss_kib_per_container"]
                       if ra and rb and rb["pss_kib_per_container"] else None)
        L.append("| PSS resident per running container (host side) | " + " | ".join(fr(r) for r in row) + " |")
        row = []
        for a, b in cols:
            ra, rb = rez.get(a), rez.get(b)
            ua = ra and ra.get("uss_kib_per_container")
            ub = rb and rb.get("uss_kib_per_container")
            row.append(ua / ub if ua and ub else None)
        L.append("| USS resident per running container (host side) | " + " | ".join(fr(r) for r in row) + " |")
    for key, label in (("bytes", "binary size"), ("bytes_with_libs", "binary + shared libs")):
        row = []
        for a, b in cols:
            sa, sb = d.size(a, key), d.size(b, key)
            row.append(sa / sb if sa and sb else None)
        L.append(f"| {label} | " + " | ".join(fr(r) for r in row) + " |")
    L.append("")

    # absolute
    L.append("## Absolute figures: median (min–max)")
    L.append("")
    hdr = []
    for n in names:
        hdr.append(n)
        if n in d.wrapped:
            hdr.append(f"{n} (net)")
    L.append("| figure | unit | " + " | ".join(hdr) + " |")
    L.append("|---|---" + "|---" * len(hdr) + "|")
    for scen, metric, label, unit, calls, sub in FIGURES:
        cells = []
        anyv = False
        for n in names:
            variants = [False, True] if n in d.wrapped else [False]
            for net in variants:
                xs = d.values(scen, metric, n, net=net, calls=calls, sub=sub)
                xs = [x for x in (xs or []) if x is not None]
                if not xs:
                    cells.append("—")
                    continue
                anyv = True
                if net and not (sub and calls):
                    cells.append("(same)")
                    continue
                cells.append(f"{fmt(statistics.median(xs), unit)} ({fmt(min(xs), unit)}–{fmt(max(xs), unit)})")
        if anyv:
            L.append(f"| {d.label(label)} | {unit} | " + " | ".join(cells) + " |")
    L.append("")

    # resident
    if res.get("extra", {}).get("resident"):
        L.append("## Resident cost of a running container")
        L.append("")
        L.append("Host-side processes left per container once the runtime has returned (every process "
                 "re-parented to the benchmark, which is a child subreaper), summed from "
                 "`/proc/PID/smaps_rollup`. USS = Private_Clean + Private_Dirty (memory only this container "
                 "holds); PSS also charges a share of pages shared with the other containers, so it depends on "
                 "how many run at once (first rows: all of them at once; last rows: one container, "
                 "alone). Kernel memory (namespaces, cgroups, page "
                 "tables) is not included.")
        L.append("")
        L.append("| runtime | containers | processes per container | USS per container, KiB | PSS per container, KiB | RSS per container, KiB | processes |")
        L.append("|---|---|---|---|---|---|---|")
        for label in ("concurrent", "single"):
            for n in names:
                r = res["extra"]["resident"].get(label, {}).get(n)
                if not r:
                    continue
                comms = ", ".join(f"{k}×{v}" for k, v in sorted(r["comms"].items()))
                L.append(f"| {n} | {r['containers']} | {r['processes_per_container']:.2f} | "
                         f"{r.get('uss_kib_per_container', 0):.0f} | "
                         f"{r['pss_kib_per_container']:.0f} | {r['rss_kib_per_container']:.0f} | {comms} |")
        L.append("")

    # binaries
    if res.get("binaries"):
        L.append("## Binary size")
        L.append("")
        L.append("| runtime | binary, MB | shared libraries | binary + libraries, MB |")
        L.append("|---|---|---|---|")
        for n, b in res["binaries"].items():
            libs = ", ".join(x["name"] for x in b["libs"]) or "static"
            L.append(f"| {n} | {b['bytes'] / 1e6:.2f} | {libs} | {b['bytes_with_libs'] / 1e6:.2f} |")
        L.append("")

    if res.get("errors"):
        L.append("## Errors during the run")
        L.append("")
        yk = res["errors"].get("youki", [])
        if yk and all("timed out" in m and " run " in m for m in yk):
            L.append("youki's timeouts are its known foreground-`run` hang (youki 0.7.0 waits for SIGCHLD only "
                     "after `start` returns, so an init that exits first is missed and `run` blocks forever; "
                     "`crates/youki/src/commands/run.rs`). The harness kills the call after the timeout and "
                     "leaves the sample out; youki's `run` figures are over the remaining iterations.")
            L.append("")
        for n, msgs in res["errors"].items():
            for msg in msgs:
                L.append(f"* {n}: `{msg.replace('`', chr(39))[:300]}`")
        L.append("")
    if res.get("extra", {}).get("leftovers"):
        L.append("## Leftovers found")
        L.append("")
        L.append("```")
        L.append(json.dumps(res["extra"]["leftovers"], indent=1)[:3000])
        L.append("```")
        L.append("")
    L.append("![chart](chart.svg)")
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


def write_svg(d: Data, path):
    names = d.names
    series = [n for n in ("bulkhead", "bulkhead-hardened", "crun", "youki") if n in names]
    if "runc" not in names:
        return
    rows = []
    for scen, metric, label in CHART:
        vals = []
        for n in series:
            if scen == "size":
                a, b = d.size(n, metric), d.size("runc", metric)
                vals.append(a / b if a and b else None)
            else:
                fig = next((f for f in FIGURES if f[0] == scen and f[1] == metric), None)
                calls, sub = (fig[4], fig[5]) if fig else (1, True)
                vals.append(d.paired(scen, metric, n, "runc", calls, sub))
        if any(v is not None for v in vals):
            rows.append((d.label(label), vals))
    bar_h, gap, left, right, top = 11, 10, 150, 60, 58
    group_h = bar_h * len(series) + gap
    width = 760
    plot_w = width - left - right
    vmax = max([v for _, vs in rows for v in vs if v is not None] + [1.0])
    vmax = min(max(1.2, vmax * 1.05), 4.0)
    height = top + group_h * len(rows) + 40

    def x(v):
        return left + plot_w * min(v, vmax) / vmax

    o = []
    o.append(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">')
    o.append(f'<rect width="{width}" height="{height}" fill="white"/>')
    o.append(f'<text x="{left}" y="18" font-size="14" font-weight="bold">'
             f'Relative to runc (= 1, dashed line); lower is better</text>')
    o.append(f'<text x="{left}" y="34" fill="#555">paired medians, {escape(d.res["started"][:10])}, '
             f'{escape(str(d.res["machine"].get("cpus")))} vCPU shared host; crun net of its hybrid-cgroup wrapper</text>')
    lx = left
    for n in series:
        o.append(f'<rect x="{lx}" y="42" width="10" height="10" fill="{COLORS.get(n, "#000")}"/>')
        lab = "crun (net)" if n in d.wrapped else n
        o.append(f'<text x="{lx + 14}" y="51">{escape(lab)}</text>')
        lx += 24 + 7 * len(lab)
    # grid
    step = 0.5 if vmax <= 3 else 1.0
    t = 0.0
    while t <= vmax + 1e-9:
        gx = x(t)
        o.append(f'<line x1="{gx:.1f}" y1="{top - 4}" x2="{gx:.1f}" y2="{top + group_h * len(rows)}" '
                 f'stroke="#e9ecef"/>')
        o.append(f'<text x="{gx:.1f}" y="{top + group_h * len(rows) + 14}" text-anchor="middle" '
                 f'fill="#555">{t:g}</text>')
        t += step
    for gi, (label, vals) in enumerate(rows):
        y0 = top + gi * group_h
        o.append(f'<text x="{left - 8}" y="{y0 + bar_h * len(series) / 2 + 4:.1f}" text-anchor="end">'
                 f'{escape(label)}</text>')
        for si, (n, v) in enumerate(zip(series, vals)):
            y = y0 + si * bar_h
            if v is None:
                o.append(f'<text x="{left + 4}" y="{y + bar_h - 2}" fill="#999">n/a</text>')
                continue
            o.append(f'<rect x="{left}" y="{y}" width="{x(v) - left:.1f}" height="{bar_h - 1}" '
                     f'fill="{COLORS.get(n, "#000")}"/>')
            clip = "›" if v > vmax else ""
            o.append(f'<text x="{x(v) + 3:.1f}" y="{y + bar_h - 2}" fill="#333">{v:.2f}{clip}</text>')
    one = x(1.0)
    o.append(f'<line x1="{one:.1f}" y1="{top - 4}" x2="{one:.1f}" y2="{top + group_h * len(rows)}" '
             f'stroke="#333" stroke-dasharray="4 3"/>')
    o.append(f'<text x="{left}" y="{height - 8}" fill="#555">ratio to runc 1.1.5 (median of per-iteration ratios; '
             f'binary size: plain ratio)</text>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("--md", required=True)
    ap.add_argument("--svg", required=True)
    a = ap.parse_args()
    with open(a.json) as f:
        res = json.load(f)
    d = Data(res)
    write_md(d, a.md)
    write_svg(d, a.svg)
    print(f"wrote {a.md} and {a.svg}")


if __name__ == "__main__":
    main()
