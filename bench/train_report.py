#!/usr/bin/python3
"""Helpers of bench/train_throughput.sh (standard library only).

    train_report.py metrics METRICS.jsonl WARMUP
        Summarise an avsr-worker run: the "step" records after the first
        WARMUP steps. Prints one line of key=value pairs:
          steps        timed steps
          fps_median   median of the steps' frames_per_s (valid frames,
                       padding not counted, over the step's step_s)
          fps_total    sum of frames / sum of step_s
          step_s_mean  mean step time
          ar_share     median of allreduce_s / step_s (gradient all-reduce)
          ar_s_mean    mean allreduce_s
          comm_share   median of comm_s / step_s (every collective: gradients,
                       BatchNorm statistics, loss sums; waits included)
          pad          1 - frames / padded_frames over the timed steps
          gflops       median gflops_per_s
          peak_rss_mb  the largest peak_rss_mb (rank 0's process)
          B, T         the step with the median frame count: its clips and
                       frames per clip (rounded), the batch the PyTorch peer
                       runs
          frames       that step's frames

    train_report.py table RESULTS
        RESULTS holds one line per run (written by train_throughput.sh):
        "avsr|torch round=R model=M layout=np1|np2 key=value ...". Prints
        the Markdown table: per model and layout the median over rounds of
        avsr's and PyTorch's median frames/s, the median over rounds of the
        per-round ratio avsr/torch, avsr's all-reduce and collectives
        shares, padding, GFLOP/s and peak RSS, PyTorch's peak RSS (rank 0's
        process on both sides).
"""
import json
import statistics
import sys


def kv(line):
    f = line.split()
    d = {"side": f[0]}
    for x in f[1:]:
        k, _, v = x.partition("=")
        d[k] = v
    return d


def metrics(path, warm):
    steps = []
    with open(path) as f:
        for line in f:
            o = json.loads(line)
            if o.get("kind") == "step":
                steps.append(o)
    timed = steps[warm:]
    if not timed:
        sys.exit("train_report: %s: no step records after %d warm-up steps" % (path, warm))
    fps = [o["frames_per_s"] for o in timed]
    share = [o["allreduce_s"] / o["step_s"] for o in timed if o["step_s"] > 0]
    comm = [o.get("comm_s", 0.0) / o["step_s"] for o in timed if o["step_s"] > 0]
    padded = sum(o.get("padded_frames", o["frames"]) for o in timed)
    by_frames = sorted(timed, key=lambda o: o["frames"])
    mid = by_frames[(len(by_frames) - 1) // 2]
    print("steps=%d fps_median=%.1f fps_total=%.1f step_s_mean=%.4f ar_share=%.4f ar_s_mean=%.4f "
          "comm_share=%.4f pad=%.4f gflops=%.1f peak_rss_mb=%.0f B=%d T=%d frames=%d"
          % (len(timed), statistics.median(fps),
             sum(o["frames"] for o in timed) / sum(o["step_s"] for o in timed),
             statistics.mean(o["step_s"] for o in timed), statistics.median(share),
             statistics.mean(o["allreduce_s"] for o in timed), statistics.median(comm),
             1 - sum(o["frames"] for o in timed) / padded,
             statistics.median(o["gflops_per_s"] for o in timed),
             max(o["peak_rss_mb"] for o in timed), mid["utts"],
             round(mid["frames"] / mid["utts"]), mid["frames"]))


LAYOUT = {"np1": "`-np 1`, 2 threads (torch: 1 process, 2 threads)",
          "np2": "`-np 2`, 1 thread each (torch: DDP gloo, 2 processes)"}


def table(path):
    runs = [kv(l) for l in open(path) if l.strip()]
    keys = []
    for r in runs:
        k = (r["model"], r["layout"])
        if k not in keys:
            keys.append(k)
    print("| model | layout | batch (torch) | avsr frames/s | torch frames/s | avsr/torch "
          "(per round) | avsr gradient all-reduce share | avsr all collectives share "
          "| avsr padding | avsr mean step s | avsr GFLOP/s | avsr peak RSS MiB "
          "| torch peak RSS MiB |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for model, layout in keys:
        rounds = {}
        for r in runs:
            if (r["model"], r["layout"]) == (model, layout):
                rounds.setdefault(r["round"], {})[r["side"]] = r
        pairs = [v for v in rounds.values() if "avsr" in v and "torch" in v]
        if not pairs:
            continue
        med = lambda side, key: statistics.median(float(p[side][key]) for p in pairs)  # noqa: E731
        ratios = [float(p["avsr"]["fps_median"]) / float(p["torch"]["fps_median"]) for p in pairs]
        t = pairs[0]["torch"]
        print("| %s | %s | B=%s T=%s | %.0f | %.0f | **%.2f** (%s) | %.1f%% | %.1f%% | %.1f%% "
              "| %.2f | %.1f | %.0f | %.0f |"
              % (model, LAYOUT.get(layout, layout), t["B"], t["T"], med("avsr", "fps_median"),
                 med("torch", "fps_median"), statistics.median(ratios),
                 ", ".join("%.2f" % x for x in ratios), 100 * med("avsr", "ar_share"),
                 100 * med("avsr", "comm_share"), 100 * med("avsr", "pad"),
                 med("avsr", "step_s_mean"), med("avsr", "gflops"),
                 max(float(p["avsr"]["peak_rss_mb"]) for p in pairs),
                 max(float(p["torch"]["peak_rss_mb"]) for p in pairs)))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "metrics":
        metrics(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "table":
        table(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
