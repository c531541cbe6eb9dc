"""PyTorch peer of bench/bench_augment.c: the Auto-AVSR transforms
(datamodule/transforms.py) written with torch ops only (no torchvision /
torchaudio here), one thread, same shapes: 16 clips of 75 frames 96x96
uint8 + 48000 int16 samples, a 10 s noise. Prints "name ms" lines
(median of 30 after 5 warm-up runs).

    /usr/bin/python3 bench/augment_torch.py > torch.txt
"""
import random
import time

import torch

torch.set_num_threads(1)
NCLIP, T, HW, NA = 16, 75, 96, 75 * 640
WARM, RUNS = 5, 30


def time_mask(x, window, stride):
    cloned = x.clone()
    length = cloned.size(0)
    n_mask = int((length + stride - 0.1) // stride)
    ts = torch.randint(0, window, size=(n_mask, 2))
    for t, t_end in ts:
        if length - t <= 0:
            continue
        t_start = random.randrange(0, length - t)
        if t_start == t_start + t:
            continue
        t_end += t_start
        cloned[t_start:t_end] = 0
    return cloned


def add_noise(x, noise, snr):
    # torchaudio.functional.add_noise: energies over the whole utterance
    start = random.randint(0, noise.shape[0] - x.shape[0])
    n = noise[start:start + x.shape[0]]
    if snr == float("inf"):
        return x
    ex, en = x.pow(2).sum(), n.pow(2).sum()
    scale = torch.sqrt(ex / en * 10 ** (-snr / 10))
    return x + scale * n


def chain(video, audio, noise, train):
    v = video.float() / 255.0
    if train:
        y, x = random.randint(0, HW - 88), random.randint(0, HW - 88)
    else:
        y = x = 4
    v = v[:, y:y + 88, x:x + 88]
    if train:
        v = time_mask(v, 10, 25)
    v = (v - 0.421) / 0.165
    a = audio.float() / 32768.0
    if train:
        a = time_mask(a, 6400, 16000)
        a = add_noise(a, noise, random.choice([-5, 0, 5, 10, 15, 20, float("inf")]))
    a = torch.nn.functional.layer_norm(a, a.shape, eps=1e-8)
    return v, a


def main():
    g = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (NCLIP, T, HW, HW), dtype=torch.uint8, generator=g)
    audio = torch.randint(-4096, 4096, (NCLIP, NA), dtype=torch.int16, generator=g)
    noise = torch.randn(160000, generator=g)
    for name, train in (("train", True), ("eval", False)):
        times = []
        for r in range(WARM + RUNS):
            t0 = time.perf_counter()
            for c in range(NCLIP):
                chain(video[c], audio[c], noise, train)
            if r >= WARM:
                times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        print(name, 0.5 * (times[RUNS // 2 - 1] + times[RUNS // 2]))


if __name__ == "__main__":
    main()
