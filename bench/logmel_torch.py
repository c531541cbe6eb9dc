#!/usr/bin/python3
"""PyTorch peer of bench/bench_logmel.c: the Whisper log-mel front end.

Each run: (zero-pad to pad_to), torch.stft(n_fft 400, hop 160, periodic
Hann, center, reflect), |X|^2 of all but the last frame, mel filters @ power
(torchaudio's Slaney filters, equal to librosa's), clamp 1e-10, log10,
per-clip max(x, max - 8), (x + 4) / 4, on the whole batch at once, under
torch.no_grad. Same shapes, input and timing rule (3 warm-up runs, median of
20) as bench_logmel; 2 threads. Prints "torch <B>x<N> pad <P> <median ms>"
per shape, then a Markdown table.
Run: /usr/bin/python3 bench/logmel_torch.py
"""
import math
import statistics
import time

import torch
import torchaudio

SHAPES = [(8, 160000, 0), (8, 160000, 480000)]
WARMUP, RUNS = 3, 20


def logmel(wave, fb, window, pad_to):
    if pad_to:
        wave = torch.nn.functional.pad(wave, (0, pad_to - wave.shape[-1]))
    stft = torch.stft(wave, 400, 160, window=window, return_complex=True)
    mag = stft[..., :-1].abs() ** 2
    mel = fb @ mag
    log_spec = torch.clamp(mel, min=1e-10).log10()
    mx = log_spec.amax(dim=(1, 2), keepdim=True)
    log_spec = torch.maximum(log_spec, mx - 8.0)
    return (log_spec + 4.0) / 4.0


def make(B, N):
    g = torch.Generator().manual_seed(1234)
    t = torch.arange(N, dtype=torch.float64) / 16000
    tone = 0.3 * torch.sin(2 * math.pi * 220.0 * t)
    return (tone[None, :] + 0.1 * (2 * torch.rand(B, N, generator=g, dtype=torch.float64) - 1)).float()


def main():
    torch.set_num_threads(2)
    fb = torchaudio.functional.melscale_fbanks(201, 0.0, 8000.0, 80, 16000, "slaney", "slaney").t().contiguous()
    window = torch.hann_window(400)
    rows = []
    with torch.no_grad():
        for B, N, P in SHAPES:
            x = make(B, N)
            ts = []
            for r in range(WARMUP + RUNS):
                t0 = time.perf_counter()
                logmel(x, fb, window, P)
                t1 = time.perf_counter()
                if r >= WARMUP:
                    ts.append((t1 - t0) * 1e3)
            ms = statistics.median(ts)
            print("torch %dx%d pad %d %.3f" % (B, N, P, ms))
            rows.append((B, N, P, ms))
    print()
    print("| wave [B, N] | pad_to | torch ms |")
    print("|---|---|---|")
    for B, N, P, ms in rows:
        print("| [%d, %d] | %d | %.3f |" % (B, N, P, ms))


if __name__ == "__main__":
    main()
