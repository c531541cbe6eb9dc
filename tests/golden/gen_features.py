"""Golden fixtures for the feature ops (runtime/op_features.h).

Writes <outdir>/features.safetensors:
- mel filterbanks: "fb.librosa" (librosa.filters.mel(sr=16000, n_fft=400,
  n_mels=80) written out in numpy float64, stored f32 as librosa does) and
  "fb.torchaudio" (torchaudio.functional.melscale_fbanks(..., norm='slaney',
  mel_scale='slaney'), transposed to [80, 201]);
- Whisper log-mel cases "wm_*": wave [B, N], lengths, output y [B, 80, T]
  (each clip computed alone on its first lengths[b] samples, frames past its
  own count 0), and for "wm_batch" the gradient g_wave of loss = (y * R).sum();
- Kaldi fbank cases "kf_*": torchaudio.compliance.kaldi.fbank per clip,
  transposed to [B, bins, T];
- "stack": AV-HuBERT's stacker (numpy code of hubert_dataset.py) on [B, F, T]
  with the gradient of (y * R).sum().
Case parameters are JSON metadata under the case name.
"""
import math
import os

import numpy as np
import torch
import torchaudio
import torchaudio.compliance.kaldi as kaldi

import stio

T = {}
META = {}


def put(case, **tensors):
    for k, v in tensors.items():
        T["%s.%s" % (case, k)] = v.detach().clone() if torch.is_tensor(v) else torch.tensor(v)


# ---------------------------------------------------------------- librosa mel

def hz_to_mel(f):
    f = np.asanyarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def mel_to_hz(m):
    m = np.asanyarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


def librosa_mel(sr, n_fft, n_mels, fmin=0.0, fmax=None):
    """librosa.filters.mel (htk=False, norm='slaney', dtype float32)."""
    if fmax is None:
        fmax = sr / 2
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2: n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, np.newaxis]
    return weights


FB = torch.from_numpy(librosa_mel(16000, 400, 80))


# ---------------------------------------------------------------- Whisper

def whisper_logmel(audio, fb, n_fft=400, hop=160, pad_to=0):
    """openai-whisper audio.log_mel_spectrogram on one clip [L] (f32)."""
    if pad_to:
        audio = torch.nn.functional.pad(audio, (0, pad_to - audio.shape[-1]))
    window = torch.hann_window(n_fft)
    stft = torch.stft(audio, n_fft, hop, window=window, return_complex=True)
    magnitudes = stft[..., :-1].abs() ** 2
    mel_spec = fb @ magnitudes
    log_spec = torch.clamp(mel_spec, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def signal(n, seed, silent=None):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64) / 16000
    f0 = 150 + 400 * torch.rand(1, generator=g).item()
    x = 0.3 * torch.sin(2 * math.pi * f0 * t) + 0.1 * torch.sin(2 * math.pi * 3.1 * f0 * t)
    x = x + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)
    if silent is not None:  # a stretch of digital silence: exercises the clamps
        x[silent[0]:silent[1]] = 0
    return x.float()


def wm_case(case, N, lengths, pad_to=0, grad=False, silent=None):
    B = len(lengths)
    wave = torch.zeros(B, N)
    for b in range(B):
        wave[b] = signal(N, 100 + b, silent)
    wave.requires_grad_(grad)
    hop = 160
    Tout = (pad_to if pad_to else N) // hop
    ys = []
    for b, L in enumerate(lengths):
        yb = whisper_logmel(wave[b, :L], FB, pad_to=pad_to)
        yb = torch.nn.functional.pad(yb, (0, Tout - yb.shape[-1]))
        ys.append(yb)
    y = torch.stack(ys)
    put(case, wave=wave, lengths=torch.tensor(lengths, dtype=torch.int64), y=y)
    if grad:
        R = torch.rand(y.shape) * 2 - 1
        (y * R).sum().backward()
        put(case, R=R, g_wave=wave.grad)
    META[case] = {"pad_to": pad_to, "grad": grad}


# ---------------------------------------------------------------- Kaldi

def kf_case(case, N, lengths, bins, scale=1.0):
    B = len(lengths)
    wave = torch.zeros(B, N)
    for b in range(B):
        wave[b] = signal(N, 200 + b) * scale
    Tout = 0 if N < 400 else 1 + (N - 400) // 160
    ys = []
    for b, L in enumerate(lengths):
        if L < 400:  # torchaudio refuses clips shorter than a window: 0 frames
            yb = torch.zeros(bins, 0)
        else:
            f = kaldi.fbank(wave[b:b + 1, :L], num_mel_bins=bins, dither=0.0,
                            sample_frequency=16000.0)
            yb = f.t()
        yb = torch.nn.functional.pad(yb, (0, Tout - yb.shape[-1]))
        ys.append(yb)
    y = torch.stack(ys)
    put(case, wave=wave, lengths=torch.tensor(lengths, dtype=torch.int64), y=y)
    META[case] = {"bins": bins}


# ---------------------------------------------------------------- stacking

def stacker(feats, stack_order):
    """AV-HuBERT hubert_dataset.py: feats [T, F] -> [ceil(T/k), k*F]."""
    feat_dim = feats.shape[1]
    if len(feats) % stack_order != 0:
        res = stack_order - len(feats) % stack_order
        res = np.zeros([res, feat_dim]).astype(feats.dtype)
        feats = np.concatenate([feats, res], axis=0)
    feats = feats.reshape((-1, stack_order, feat_dim)).reshape(-1, stack_order * feat_dim)
    return feats


def stack_case(case, B, F, Tn, k):
    x = torch.rand(B, F, Tn) * 4 - 2
    ys = [torch.from_numpy(stacker(x[b].t().numpy(), k)).t() for b in range(B)]
    y = torch.stack(ys)
    # gradient of (y * R).sum(): the inverse permutation of R (padding dropped)
    R = torch.rand(y.shape) * 2 - 1
    g = torch.zeros(B, F, Tn)
    for b in range(B):
        rt = R[b].t().reshape(-1, k, F).reshape(-1, F)[:Tn]  # [T, F]
        g[b] = rt.t()
    put(case, x=x, y=y, R=R, g_x=g)
    META[case] = {"k": k}


def main(outdir):
    torch.manual_seed(0)
    put("fb", librosa=FB)
    fta = torchaudio.functional.melscale_fbanks(n_freqs=201, f_min=0.0, f_max=8000.0, n_mels=80,
                                                sample_rate=16000, norm="slaney",
                                                mel_scale="slaney")
    # the brief's claim, checked here rather than stored (fixture size)
    assert (fta.t() - FB).abs().max().item() < 1e-6
    # batch with different (odd) lengths, silence in the middle, gradient
    wm_case("wm_batch", 2400, [2400, 2017, 1601], grad=True, silent=(1300, 1800))
    # a very short clip: one frame
    wm_case("wm_short", 250, [250])
    # Whisper's padded mode with a small pad_to (same code path as 480000)
    wm_case("wm_pad", 2000, [2000, 1501], pad_to=3200)
    kf_case("kf_80", 3000, [3000, 2333], 80)
    kf_case("kf_26", 1234, [1234], 26, scale=32768.0)
    kf_case("kf_short", 450, [450, 399], 80)
    stack_case("stack", 2, 5, 7, 4)
    stack_case("stack1", 1, 3, 1, 4)
    stio.save(os.path.join(outdir, "features.safetensors"), T, META)


if __name__ == "__main__":
    main(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops"))
