#!/usr/bin/env python3
"""Plots benchmark JSON results (one JSON object per line) as PNG (needs matplotlib):
  perf/plot.py perf/results/inprocess-*.json [outdir]
    mpps.png    Mpps per worker core by mode, 1K vs 1M established flows, and 1M SYN,
                with min-max whiskers and the MAC-swap ceiling;
    cycles.png  cycles per packet for the same runs.
  perf/plot.py perf/results/memif-*.json [outdir]
    latency_cdf.png  latency CDFs of ferrovs and testpmd at max, 50% and 90% load.
"""
import collections, json, os, statistics, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

def latency(src, out):
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for line in open(src):
        if not line.strip():
            continue
        d = json.loads(line)
        cdf = d["result"]["cdf_us"]
        ax.plot([v for _, v in cdf], [q for q, _ in cdf], marker=".", label="%s (%.2f Mpps)" % (d["run"], d["result"]["rx_mpps"]))
    ax.set_xscale("log")
    ax.set_xlabel("latency through the load balancer and memif, us (log)")
    ax.set_ylabel("fraction of packets")
    ax.set_title("ferrovs vs testpmd io on memif, 64-byte packets")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(out, "latency_cdf.png")
    fig.savefig(path, dpi=110)
    print(path)

def main():
    src = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(src) or "."
    if "memif" in os.path.basename(src):
        return latency(src, out)
    runs = collections.defaultdict(list)
    for line in open(src):
        if line.strip():
            d = json.loads(line)
            runs[(d["mode"], d["flows"], d["traffic"])].append(d)
    ceiling = [r["mpps"] for r in runs.get(("macswap", 1000000, "established"), [])]
    modes = ["nat", "dr", "tun"]
    cases = [(1000, "established", "1K flows, established"), (1000000, "established", "1M flows, established"), (1000000, "syn", "1M new flows (SYN)")]
    for metric, fname, ylabel in [("mpps", "mpps.png", "Mpps per worker core"), ("cycles_per_packet", "cycles.png", "cycles per packet (worker TSC)")]:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        width = 0.26
        for i, (flows, traffic, label) in enumerate(cases):
            med, lo, hi = [], [], []
            for m in modes:
                v = [r[metric] for r in runs.get((m, flows, traffic), [])] or [0]
                med.append(statistics.median(v)); lo.append(statistics.median(v) - min(v)); hi.append(max(v) - statistics.median(v))
            xs = [j + (i - 1) * width for j in range(len(modes))]
            ax.bar(xs, med, width, yerr=[lo, hi], capsize=3, label=label)
        if metric == "mpps" and ceiling:
            ax.axhline(statistics.median(ceiling), color="gray", linestyle="--", label="MAC-swap forwarder (harness ceiling)")
        ax.set_xticks(range(len(modes)))
        ax.set_xticklabels(modes)
        ax.set_ylabel(ylabel)
        ax.set_title("ferrovs in-process, 64-byte packets, one worker core (median, min-max)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out, fname)
        fig.savefig(path, dpi=110)
        print(path)

if __name__ == "__main__":
    main()
