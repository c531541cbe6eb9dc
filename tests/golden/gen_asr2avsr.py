"""Golden fixtures for the ASR2AVSR composition and the loss terms of
models/avsr_model.h (avsr_model_forward_losses, avsr_model_teach).

A PyTorch replica of the composed model at tiny sizes:

    mel      = Whisper log-mel of each clip's valid samples (gen_features.py
               whisper_logmel), zero beyond, width N / 160
    with video: mel trimmed / zero-padded to 4 T, then the ASR2AVSR fusion
               module (gen_lora.py AV_Fusion: spec_frontend, video_frontend on
               the video as given -- the model's video_scale is 1 --, fuse),
               frames beyond a clip's valid mel length set to 0
    without video: the plain mel (the module is bypassed)
    [pad_frames P: the mel padded to P frames, 0 in training, the clip's
               minimum input log-mel value in evaluation; the ASR sees P
               frames for every clip]
    ASR      = ESPnet Conv2dSubsampling (encoder.embed.conv.*, embed.out.0)
               + Conformer (gen_encoder.py Encoder) + CTC (ctc.ctc_lo)
               + Transformer decoder (gen_encoder.py Decoder)

A teacher (same architecture, other weights, evaluation mode, no gradient)
sees the clean audio without video: its mel, encoder output and greedy
tokens (attention greedy from <sos>, argmax over 1..V-1, until <eos> or as
many tokens as encoder frames). The student sees the noisy audio and the
video, and

    total = hybrid (w CTC + (1 - w) att) + ctc CTC + dec_ce att
          + mel_l1 L1(mel, teacher mel) + enc_l1 L1(enc, teacher enc)

with CTC = sum / B (zero_infinity), att = ESPnet label smoothing (sum / B),
L1 = mean of |x - t| over the valid elements (frames t < length, all
features).

File asr2avsr.safetensors, per case "<c>" (train: training mode, no
padding, targets = transcripts; eval: evaluation mode, clip lengths 10 and
7, targets = the teacher's greedy tokens; pad: evaluation mode with
pad_frames 48, lengths 10 and 7, transcripts):
  "video" (all cases), "<c>.noisy", "<c>.clean", "<c>.lengths", "<c>.ys", "<c>.ylens"
  "<c>.t.mel", "<c>.t.enc", "<c>.t.tokens" (padded with -1), "<c>.t.ntok"
  "<c>.mel", "<c>.enc", "<c>.ctc_logits", "<c>.dec_logits"
  "<c>.ctc", "<c>.att", "<c>.acc", "<c>.mel_l1", "<c>.enc_l1", "<c>.total"
  "<c>.g.<name>" the gradient of total for every student parameter
and "student.p.<name>", "teacher.p.<name>": the two state dicts (floats
rounded to float16, stored as F16). The replica runs in float64 (the
log-mel in float32, as the C op); results are stored as float32.
Run: /usr/bin/python3 tests/golden/gen_ops.py asr2avsr
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

import stio
from gen_encoder import Decoder, Encoder, RelPositionalEncoding, add_sos_eos, subsequent_mask
from gen_features import FB, whisper_logmel
from gen_lora import AV_Fusion

stio._DT.setdefault(torch.float16, "F16")

# the C test builds the same model from this `model:` section (test_asr2avsr.c)
FM = dict(n_mels=80, spec_channels=2, spec_layers=2, lip_stem=2, lip_channels=[2, 2, 2, 2],
          lip_blocks=[[1, 0], [1, 1], [1, 0], [1, 0]], lip_inner=2, d_model=8, heads=2,
          layers=2, window=16)
CFG = dict(V=11, sub_ch=4, d=16, heads=2, ffn=32, layers=1, kernel=5, dec_layers=1,
           ctc_weight=0.3, lsm=0.1, B=2, T=10, roi=65)
W = dict(hybrid=0.5, ctc=0.3, dec_ce=0.2, mel_l1=1.0, enc_l1=2.0)


class CTC(nn.Module):
    def __init__(self, odim, d):
        super().__init__()
        self.ctc_lo = nn.Linear(d, odim)


class SubEmbed(nn.Module):
    """ESPnet Conv2dSubsampling with its RelPositionalEncoding (the encoder's
    embed in an audio-only log-mel model)."""

    def __init__(self, idim, ch, d):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, ch, 3, 2), nn.ReLU(), nn.Conv2d(ch, ch, 3, 2), nn.ReLU())
        self.out = nn.Sequential(nn.Linear(ch * (((idim - 1) // 2 - 1) // 2), d))
        self.pe = RelPositionalEncoding(d, 0.0)

    def forward(self, feats):  # [B, idim, T]
        x = self.conv(feats.transpose(1, 2).unsqueeze(1))
        b, c, t, f = x.size()
        return self.pe(self.out[0](x.transpose(1, 2).contiguous().view(b, t, c * f)))


def sub_len(n):
    return ((n - 1) // 2 - 1) // 2


class ASR2AVSR(nn.Module):
    def __init__(self, c, fm, pad=0):
        super().__init__()
        d = c["d"]
        self.fusion_module = AV_Fusion(fm)
        self.encoder = Encoder(80, d, c["heads"], c["ffn"], c["layers"], c["kernel"])
        self.encoder.embed = SubEmbed(80, c["sub_ch"], d)
        self.decoder = Decoder(c["V"], d, c["heads"], c["ffn"], c["dec_layers"])
        self.ctc = CTC(c["V"], d)
        self.V, self.w, self.lsm, self.pad = c["V"], c["ctc_weight"], c["lsm"], pad

    def encode(self, wave, video, lengths):
        B, N = wave.shape
        slen = [min(int(l) * 640, N) for l in lengths]
        raw = torch.zeros(B, 80, N // 160, dtype=wave.dtype)
        for b in range(B):
            m = whisper_logmel(wave[b, :slen[b]].float(), FB).to(wave.dtype)
            raw[b, :, :m.shape[1]] = m
        mlen = [s // 160 for s in slen]
        mel = raw
        if video is not None:
            Tv = video.shape[1]
            Tm = 4 * Tv
            mel = raw[:, :, :Tm] if raw.shape[2] >= Tm else F.pad(raw, (0, Tm - raw.shape[2]))
            mlen = [min(mlen[b], 4 * min(int(lengths[b]), Tv)) for b in range(B)]
            fm = self.fusion_module
            spec = fm.spec_frontend(mel.transpose(1, 2))
            vid = fm.video_frontend(video)
            y = fm.fuse(spec, vid).transpose(1, 2)
            keep = (torch.arange(Tm)[None, :] < torch.tensor(mlen)[:, None]).to(y.dtype)
            mel = y * keep[:, None, :]
        alen_in = mlen
        if self.pad:
            P = self.pad
            mel = F.pad(mel, (0, P - mel.shape[2]))
            if not self.training:
                fill = torch.zeros(B, 1, P, dtype=mel.dtype)
                for b in range(B):
                    fill[b, 0, mlen[b]:] = raw[b, :, :mlen[b]].min()
                mel = mel + fill
            alen_in = [P] * B
        alen = torch.tensor([sub_len(n) for n in alen_in])
        Tp = sub_len(mel.shape[2])
        mask = (torch.arange(Tp)[None, :] < alen[:, None]).unsqueeze(1)
        enc = self.encoder(mel, mask)
        return mel, torch.tensor(mlen), enc, alen, mask

    def greedy(self, enc, alen, mask):
        V, eos = self.V, self.V - 1
        out = []
        for b in range(enc.shape[0]):
            ys = [eos]
            toks = []
            while len(toks) < int(alen[b]):
                y = torch.tensor([ys])
                L = y.shape[1]
                logits = self.decoder(y, subsequent_mask(L).unsqueeze(0), enc[b:b + 1], mask[b:b + 1])
                lp = torch.log_softmax(logits[0, -1], -1)
                best = 1 + int(torch.argmax(lp[1:]))
                if best == eos:
                    break
                toks.append(best)
                ys.append(best)
            out.append(toks)
        return out

    def losses(self, enc, alen, mask, ys):
        B = enc.shape[0]
        logits = self.ctc.ctc_lo(enc)
        ylens = (ys != -1).sum(1)
        flat = torch.cat([y[y != -1] for y in ys])
        ctc = F.ctc_loss(logits.transpose(0, 1).log_softmax(2), flat, alen, ylens,
                         blank=0, reduction="sum", zero_infinity=True) / B
        sos = eos = self.V - 1
        ys_in, ys_out = add_sos_eos(ys, sos, eos, -1)
        L = ys_in.size(1)
        tgt_mask = (ys_in != -1).unsqueeze(-2) & subsequent_mask(L).unsqueeze(0)
        pred = self.decoder(ys_in, tgt_mask, enc, mask)
        xv = pred.reshape(-1, self.V)
        t = ys_out.reshape(-1)
        ignore = t == -1
        true = torch.full_like(xv, self.lsm / (self.V - 1))
        true.scatter_(1, t.masked_fill(ignore, 0).unsqueeze(1), 1.0 - self.lsm)
        kl = F.kl_div(torch.log_softmax(xv, 1), true, reduction="none")
        att = kl.masked_fill(ignore.unsqueeze(1), 0).sum() / B
        hit = (xv.argmax(1) == t) & ~ignore
        acc = hit.sum().double() / (~ignore).sum()
        return logits, pred, ctc, att, acc


def l1_valid(x, t, lengths, time_dim):
    """mean |x - t| over frames < lengths[b] along time_dim (1 or 2)."""
    W = min(x.shape[time_dim], t.shape[time_dim])
    x, t = x.narrow(time_dim, 0, W), t.narrow(time_dim, 0, W)
    keep = (torch.arange(W)[None, :] < lengths[:, None]).to(x.dtype)
    keep = keep[:, None, :] if time_dim == 2 else keep[:, :, None]
    n = keep.sum() * x.shape[3 - time_dim]
    return ((x - t).abs() * keep).sum() / n


def randomise(model, gen):
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
                mod.weight.uniform_(0.6, 1.4, generator=gen)
                mod.bias.uniform_(-0.3, 0.3, generator=gen)
                mod.running_mean.uniform_(-0.2, 0.2, generator=gen)
                mod.running_var.uniform_(0.6, 1.4, generator=gen)
            if isinstance(mod, nn.LayerNorm):
                mod.weight.copy_(1.0 + 0.2 * torch.randn(mod.weight.shape, generator=gen))
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen))
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())


def speechlike(n, gen):
    t = torch.arange(n, dtype=torch.float64) / 16000
    f0 = 120 + 300 * torch.rand(1, generator=gen).item()
    env = 0.5 + 0.5 * torch.sin(2 * torch.pi * 3.0 * t)
    x = env * (0.3 * torch.sin(2 * torch.pi * f0 * t) + 0.1 * torch.sin(2 * torch.pi * 2.7 * f0 * t))
    return x + 0.02 * torch.randn(n, generator=gen, dtype=torch.float64)


def main(outdir):
    torch.manual_seed(77)
    gen = torch.Generator().manual_seed(11)
    c, T, META = CFG, {}, {}
    student, teacher = ASR2AVSR(c, FM), ASR2AVSR(c, FM)
    randomise(student, gen)
    randomise(teacher, gen)
    for tag, m in (("student", student), ("teacher", teacher)):
        for k, v in m.state_dict().items():
            T["%s.p.%s" % (tag, k)] = v.half() if v.is_floating_point() else v
    B, Tv, roi = c["B"], c["T"], c["roi"]
    transcripts = torch.tensor([[3, 5, 1, 7], [4, 4, 8, -1]])
    video = torch.randn(B, Tv, roi, roi, generator=gen, dtype=torch.float64).half().double()
    T["video"] = video.half()
    for case, train, lens, extra, pad in (("train", True, [Tv, Tv], 320, 0),
                                          ("eval", False, [Tv, 7], 0, 0),
                                          ("pad", False, [Tv, 7], 0, 48)):
        s = ASR2AVSR(c, FM, pad)
        s.load_state_dict(student.state_dict())
        s = s.double().train(train)
        t = ASR2AVSR(c, FM, pad)
        t.load_state_dict(teacher.state_dict())
        t = t.double().eval()
        N = Tv * 640 + extra
        clean = torch.stack([speechlike(N, gen) for _ in range(B)])
        noisy = clean + 0.05 * torch.randn(B, N, generator=gen, dtype=torch.float64)
        clean, noisy = clean.half().double(), noisy.half().double()
        lengths = torch.tensor(lens)
        with torch.no_grad():
            t_mel, _, t_enc, t_alen, t_mask = t.encode(clean, None, lengths)
            toks = t.greedy(t_enc, t_alen, t_mask)
        mx = max(1, max(len(x) for x in toks))
        tok_t = torch.full((B, mx), -1, dtype=torch.int64)
        for b, x in enumerate(toks):
            tok_t[b, :len(x)] = torch.tensor(x, dtype=torch.int64)
        ys = tok_t if case == "eval" else transcripts
        mel, mlen, enc, alen, mask = s.encode(noisy, video, lengths)
        logits, pred, ctc, att, acc = s.losses(enc, alen, mask, ys)
        mel_l1 = l1_valid(mel, t_mel, mlen, 2)
        enc_l1 = l1_valid(enc, t_enc, alen, 1)
        w = s.w
        total = (W["hybrid"] * (w * ctc + (1 - w) * att) + W["ctc"] * ctc + W["dec_ce"] * att
                 + W["mel_l1"] * mel_l1 + W["enc_l1"] * enc_l1)
        total.backward()
        for k, v in dict(noisy=noisy.half(), clean=clean.half(),
                         lengths=lengths, ys=ys, ylens=(ys != -1).sum(1),
                         mel=mel, enc=enc, ctc_logits=logits, dec_logits=pred,
                         ctc=ctc, att=att, acc=acc, mel_l1=mel_l1, enc_l1=enc_l1,
                         total=total, mel_lengths=mlen, enc_lengths=alen).items():
            v = v.detach()
            T["%s.%s" % (case, k)] = v.reshape(-1) if v.dim() == 0 else v
        T[case + ".t.mel"] = t_mel
        T[case + ".t.enc"] = t_enc
        T[case + ".t.enc_lengths"] = t_alen
        T[case + ".t.tokens"] = tok_t
        T[case + ".t.ntok"] = torch.tensor([len(x) for x in toks], dtype=torch.int64)
        for k, p in s.named_parameters():
            T["%s.g.%s" % (case, k)] = p.grad if p.grad is not None else torch.zeros_like(p)
        META[case] = {"train": train, "lengths": lens, "pad_frames": pad, "extra_samples": extra,
                      "teacher_tokens": toks}
    META["cfg"] = c
    META["fusion_module"] = FM
    META["weights"] = W
    T = {k: v.float() if v.dtype == torch.float64 else v for k, v in T.items()}
    stio.save(os.path.join(outdir, "asr2avsr.safetensors"), T, META)


if __name__ == "__main__":
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "ops"))
