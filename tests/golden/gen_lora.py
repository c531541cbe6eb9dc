"""Golden fixtures for the `lora` area: LoRA adapters (models/lora.h), the
Align-AV-HuBERT AV-shift loss (models/av_shift.h, runtime/op_align.h) and the
ASR2AVSR fusion module (models/av_fusion_module.h).

    /usr/bin/python3 tests/golden/gen_ops.py lora

writes
  lora.safetensors         LoRA linear replica (frozen base), merged weight;
                           shifted symmetric InfoNCE loss and its gradients
  lora_window.safetensors  the fusion block alone at lengths 37, 160, 161, 400
                           (window 160): padding, windowing, stitching
  lora_avfm.safetensors    the whole fusion module at small widths (window
                           160 and 16), training mode, every parameter
                           gradient, running statistics, evaluation output

The modules below are replicas of SimicCh/AVSR-AV_Fusion_Module_for_Pre-
Trained_ASR (models/feature_extraction.py, attention.py, AV_Fusion_model.py)
with the same module names, so the state dicts use the names the C module
registers; only the widths (hard-wired 64/128/256/256 and 64 there) are
arguments. Per case "<c>": "<c>.p.<name>" the state dict (float tensors
rounded to float16 and stored as F16, so both sides use identical values),
inputs, "<c>.y" the output, "<c>.R" the upstream gradient (loss =
(y * R).sum()), "<c>.g.<name>" parameter gradients, "<c>.after.<name>" the
running statistics after the training step; settings are JSON metadata.
"""
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

import stio

stio._DT.setdefault(torch.float16, "F16")


def rnd(*shape, lo=-1.0, hi=1.0):
    return torch.rand(*shape) * (hi - lo) + lo


# --------------------------------------------------------------------- LoRA

def lora_case(T, M, c, B, L, fin, fout, r, alpha):
    x = rnd(B, L, fin).requires_grad_()
    W = rnd(fout, fin) / math.sqrt(fin)
    b = rnd(fout) / math.sqrt(fin)
    A = (rnd(r, fin) / math.sqrt(fin)).requires_grad_()
    Bm = (rnd(fout, r) * 0.5).requires_grad_()  # a "trained" B (B = 0 at init)
    scale = alpha / r
    # PEFT: result = base_layer(x) + lora_B(lora_A(dropout(x))) * scaling
    y = F.linear(x, W, b) + F.linear(F.linear(x, A), Bm) * scale
    R = rnd(*y.shape)
    (y * R).sum().backward()
    merged = W + scale * (Bm @ A)
    for k, v in dict(x=x, W=W, b=b, A=A, B=Bm, y=y, R=R, merged=merged,
                     y_merged=F.linear(x, merged, b)).items():
        T[c + "." + k] = v.detach().clone()
    T[c + ".g_x"] = x.grad.clone()
    T[c + ".g_A"] = A.grad.clone()
    T[c + ".g_B"] = Bm.grad.clone()
    M[c] = {"in": fin, "out": fout, "rank": r, "alpha": alpha}


# ------------------------------------------------------------ AV-shift loss

def infonce_ref(A, V, scale, shifts, lengths):
    """hubert_criterion_plusalignment.py, per utterance, summed."""
    A = A / A.norm(dim=2, keepdim=True).clamp_min(1e-12)
    V = V / V.norm(dim=2, keepdim=True).clamp_min(1e-12)
    total = 0.0
    for b in range(A.shape[0]):
        L = lengths[b]
        fa, fv = A[b, :L], V[b, :L]
        lpa = scale * fa @ fv.T
        lpv = lpa.t()
        s = shifts[b]
        if s < 0:
            lpa = lpa[-s:][:, :s]
        elif s > 0:
            lpa = lpa[:-s][:, s:]
        if s > 0:
            lpv = lpv[s:][:, :-s]
        elif s < 0:
            lpv = lpv[:s][:, -s:]
        n = lpa.shape[0]
        lab = torch.arange(n)
        total = total + (F.cross_entropy(lpa, lab) + F.cross_entropy(lpv, lab)) / 2
    return total


def shift_case(T, M, c, B, Tn, d, shifts, lengths, scale):
    A = rnd(B, Tn, d).requires_grad_()
    V = rnd(B, Tn, d).requires_grad_()
    s = torch.tensor(scale).requires_grad_()
    loss = infonce_ref(A, V, s, shifts, lengths)
    loss.backward()
    for k, v in dict(A=A, V=V, loss=loss.reshape(1), g_A=A.grad, g_V=V.grad,
                     g_scale=s.grad.reshape(1)).items():
        T[c + "." + k] = v.detach().clone()
    M[c] = {"shifts": shifts, "lengths": lengths, "scale": scale}


# ------------------------------------------------- ASR2AVSR fusion module

class ResidualBlock_specFront_CNN(nn.Module):
    def __init__(self, cin, cout, downsample=None):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout))
        self.downsample = downsample
        self.relu = nn.ReLU()

    def forward(self, x):
        res = x
        x = self.conv2(self.conv1(x))
        if self.downsample:
            res = self.downsample(res)
        return self.relu(x + res)


class spec_frontend_CNN(nn.Module):
    def __init__(self, ch, nl, F_):
        super().__init__()
        self.CNN_layer = nn.ModuleList(
            [ResidualBlock_specFront_CNN(1, ch, nn.Conv2d(1, ch, 1))] +
            [ResidualBlock_specFront_CNN(ch, ch) for _ in range(nl - 2)] +
            [ResidualBlock_specFront_CNN(ch, 1, nn.Conv2d(ch, 1, 1))])
        self.out_proj = nn.Linear(F_, F_)

    def forward(self, x):
        x = x[:, None]
        for layer in self.CNN_layer:
            x = layer(x)
        return self.out_proj(x.squeeze(1))


class ResidualBlock_2D(nn.Module):
    def __init__(self, cin, cout, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv3d(cin, cout, (1, 3, 3), (1, stride, stride), (0, 1, 1)),
                                   nn.BatchNorm3d(cout), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv3d(cout, cout, (1, 3, 3), 1, (0, 1, 1)), nn.BatchNorm3d(cout))
        self.downsample = downsample
        self.relu = nn.ReLU()

    def forward(self, x):
        res = x
        x = self.conv2(self.conv1(x))
        if self.downsample:
            res = self.downsample(res)
        return self.relu(x + res)


class ResidualBlock_3D(nn.Module):
    def __init__(self, c, inner):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv3d(c, inner, 1), nn.BatchNorm3d(inner), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv3d(inner, inner, (5, 3, 3), 1, (2, 1, 1)),
                                   nn.BatchNorm3d(inner), nn.ReLU())
        self.conv3 = nn.Sequential(nn.Conv3d(inner, c, 1), nn.BatchNorm3d(c))
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + x)


class LIPNET_CNN(nn.Module):
    def __init__(self, layers, emb, stem, chans, inner):
        super().__init__()
        self.inplanes = stem
        self.inpConv = nn.Sequential(nn.Conv3d(1, stem, (1, 7, 7), (1, 2, 2), (0, 3, 3)),
                                     nn.BatchNorm3d(stem), nn.ReLU(),
                                     nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        self.layer01 = self._l2(chans[0], layers[0][0], 1)
        self.layer02 = self._l3(chans[0], inner, layers[0][1])
        self.layer11 = self._l2(chans[1], layers[1][0], 2)
        self.layer12 = self._l3(chans[1], inner, layers[1][1])
        self.upsample1 = nn.ConvTranspose3d(chans[1], chans[1], (6, 1, 1), (2, 1, 1), (2, 0, 0))
        self.layer21 = self._l2(chans[2], layers[2][0], 2)
        self.layer22 = self._l3(chans[2], inner, layers[2][1])
        self.upsample2 = nn.ConvTranspose3d(chans[2], chans[2], (6, 1, 1), (2, 1, 1), (2, 0, 0))
        self.layer31 = self._l2(chans[3], layers[3][0], 2)
        self.layer32 = self._l3(chans[3], inner, layers[3][1])
        self.out_CNN = nn.Sequential(nn.Conv3d(chans[3], emb, 1), nn.AvgPool3d((1, 3, 3), stride=1))

    def _l2(self, planes, blocks, stride):
        down = None
        if stride != 1 or self.inplanes != planes:
            down = nn.Sequential(nn.Conv3d(self.inplanes, planes, 1, (1, stride, stride)),
                                 nn.BatchNorm3d(planes))
        layers = [ResidualBlock_2D(self.inplanes, planes, stride, down)]
        self.inplanes = planes
        layers += [ResidualBlock_2D(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _l3(self, planes, inner, blocks):
        return nn.Sequential(*[ResidualBlock_3D(planes, inner) for _ in range(blocks)])

    def forward(self, x):
        x = self.inpConv(x[:, None])
        x = self.layer02(self.layer01(x))
        x = self.upsample1(self.layer12(self.layer11(x)))
        x = self.upsample2(self.layer22(self.layer21(x)))
        x = self.out_CNN(self.layer32(self.layer31(x)))
        B, S, N, _, _ = x.shape
        return torch.reshape(x, (B, S, N)).permute(0, 2, 1)


class Prep(nn.Module):
    def __init__(self, d, heads, dk):
        super().__init__()
        self.linear = nn.Linear(d, heads * dk)
        self.heads, self.dk = heads, dk

    def forward(self, x):
        B, S, _ = x.shape
        return self.linear(x).view(B, self.heads, S, self.dk)  # no transpose (quirk)


class MultiHeadAttention(nn.Module):
    def __init__(self, heads, d):
        super().__init__()
        self.d_k = d  # per-head d_k = d_model (quirk)
        self.query, self.key, self.value = Prep(d, heads, d), Prep(d, heads, d), Prep(d, heads, d)
        self.output = nn.Linear(d * heads, d)

    def forward(self, query, key, value):
        n, s, _ = query.shape
        q, k, v = self.query(query), self.key(key), self.value(value)
        a = F.softmax(torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.size(-1)), dim=-1)
        return self.output(torch.matmul(a, v).reshape(n, s, -1))


class Attention_Block(nn.Module):
    def __init__(self, blocksize, heads, d):
        super().__init__()
        self.blocksize = blocksize
        self.MHA = MultiHeadAttention(heads, d)
        self.layernorm1 = nn.LayerNorm(d)
        self.feed_forward = nn.Linear(d, d)
        self.layernorm2 = nn.LayerNorm(d)

    def forward(self, query, key, value):
        w = self.blocksize
        nb = int((query.shape[1] / w) * 2 - 1)
        if nb > 1:
            qs, ks, vs = [], [], []
            for b in range(len(query)):
                for j in range(nb):
                    s0 = j * (w // 2)
                    qs.append(query[b, s0:s0 + w])
                    ks.append(key[b, s0:s0 + w])
                    vs.append(value[b, s0:s0 + w])
            qr, kr, vr = torch.stack(qs), torch.stack(ks), torch.stack(vs)
        else:
            qr, kr, vr = query, key, value
        x = self.layernorm1(self.MHA(qr, kr, vr) + vr)
        x = self.layernorm2(self.feed_forward(x) + x)
        if nb > 1:
            st, en = int(0.25 * w), int(w - int(0.25 * w))
            out = []
            for b in range(len(query)):
                parts = [x[b * nb, :en]]
                for j in range(1, nb - 1):
                    parts.append(x[b * nb + j, st:en])
                parts.append(x[(b + 1) * nb - 1, st:])
                out.append(torch.cat(parts, 0))
            x = torch.stack(out)
        return x


class Fusion_block(nn.Module):
    def __init__(self, F_, d, blocksize, layers, heads):
        super().__init__()
        self.value_proj = nn.Linear(F_, d)
        self.query_proj = nn.Linear(F_, d)
        self.attn_layers = nn.ModuleList([Attention_Block(blocksize, heads, d) for _ in range(layers)])
        self.out_proj = nn.Linear(d, F_)

    def forward(self, value, query):
        value, query = self.value_proj(value), self.query_proj(query)
        for layer in self.attn_layers:
            value = layer(query=query, key=value, value=value)
        return self.out_proj(value)


class AV_Fusion(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.blocksize = cfg["window"]
        self.spec_frontend = spec_frontend_CNN(cfg["spec_channels"], cfg["spec_layers"], cfg["n_mels"])
        self.video_frontend = LIPNET_CNN(cfg["lip_blocks"], cfg["n_mels"], cfg["lip_stem"],
                                         cfg["lip_channels"], cfg["lip_inner"])
        self.fusion_block = Fusion_block(cfg["n_mels"], cfg["d_model"], cfg["window"], cfg["layers"],
                                         cfg["heads"])

    def set_window(self, w):
        self.blocksize = w
        for l in self.fusion_block.attn_layers:
            l.blocksize = w

    def fuse(self, spec, video):
        n = spec.size(1)
        if n % self.blocksize:
            p = self.blocksize - n % self.blocksize
            spec = F.pad(spec, (0, 0, 0, p))
            video = F.pad(video, (0, 0, 0, p))
        return self.fusion_block(spec, video)[:, :n]

    def forward(self, mel, video):
        # mel [B, F, Tm] (Whisper layout) -> the original's [B, Tm, F]
        spec = self.spec_frontend(mel.transpose(1, 2))
        vid = self.video_frontend(video / 255.0)
        return self.fuse(spec, vid).transpose(1, 2)


def f16_state(model):
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())


def put_state(T, c, model):
    for k, v in model.state_dict().items():
        T["%s.p.%s" % (c, k)] = v.detach().clone().half() if v.is_floating_point() else v.clone()


def put_grads(T, c, model):
    for k, p in model.named_parameters():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        T["%s.g.%s" % (c, k)] = g.detach().clone()


def window_cases(T, M):
    cfg = dict(n_mels=8, spec_channels=2, spec_layers=2, lip_stem=2, lip_channels=[2, 2, 2, 2],
               lip_blocks=[[1, 0], [1, 0], [1, 0], [1, 0]], lip_inner=2, d_model=8, heads=2,
               layers=2, window=160)
    m = AV_Fusion(cfg)
    f16_state(m)
    put_state(T, "win", m)
    M["win"] = cfg
    for B, L in [(2, 37), (1, 160), (1, 161), (1, 400)]:
        c = "win%d" % L
        m.zero_grad()
        a = rnd(B, L, 8).half().float().requires_grad_()
        v = rnd(B, L, 8).half().float().requires_grad_()
        y = m.fuse(a, v)
        R = rnd(*y.shape)
        (y * R).sum().backward()
        T[c + ".a"] = a.detach().half()
        T[c + ".v"] = v.detach().half()
        T[c + ".y"] = y.detach().clone()
        T[c + ".R"] = R
        T[c + ".g_a"] = a.grad.clone()
        T[c + ".g_v"] = v.grad.clone()
        put_grads(T, c, m)
        M[c] = {"B": B, "L": L}


def avfm_cases(T, M):
    cfg = dict(n_mels=8, spec_channels=4, spec_layers=3, lip_stem=4, lip_channels=[4, 6, 8, 8],
               lip_blocks=[[2, 1], [1, 1], [1, 2], [3, 1]], lip_inner=4, d_model=8, heads=2,
               layers=2, window=160)
    m = AV_Fusion(cfg)
    f16_state(m)
    init = {k: v.clone() for k, v in m.state_dict().items()}
    put_state(T, "avfm", m)
    M["avfm"] = cfg
    B, Tv, H = 2, 6, 65
    video = torch.randint(0, 256, (B, Tv, H, H), dtype=torch.uint8)
    mel = rnd(B, 8, 4 * Tv, lo=-1.5, hi=1.5).half().float()
    T["avfm.video"] = video
    T["avfm.mel"] = mel.half()
    for c, w in [("avfm", 160), ("avfm16", 16)]:
        m.load_state_dict(init)
        m.set_window(w)
        m.train()
        m.zero_grad()
        y = m(mel, video.float())
        R = rnd(*y.shape)
        (y * R).sum().backward()
        T[c + ".y"] = y.detach().clone()
        T[c + ".R"] = R
        put_grads(T, c, m)
        for k, v in m.state_dict().items():
            if "running" in k:
                T["%s.after.%s" % (c, k)] = v.clone()
        m.eval()
        with torch.no_grad():
            T[c + ".y_eval"] = m(mel, video.float()).clone()
        M.setdefault(c, {})["window"] = w


def main(outdir):
    torch.manual_seed(1234)
    T, M = {}, {}
    lora_case(T, M, "lin", 2, 5, 13, 11, 3, 6.0)
    lora_case(T, M, "lin1", 1, 1, 7, 9, 1, 1.0)
    shift_case(T, M, "nce", 3, 9, 6, [2, -3, 0], [9, 7, 5], math.log(1 / 0.07))
    shift_case(T, M, "nce1", 2, 4, 5, [0, 3], [1, 4], 1.3)
    stio.save(os.path.join(outdir, "lora.safetensors"), T, M)
    T, M = {}, {}
    window_cases(T, M)
    stio.save(os.path.join(outdir, "lora_window.safetensors"), T, M)
    T, M = {}, {}
    avfm_cases(T, M)
    stio.save(os.path.join(outdir, "lora_avfm.safetensors"), T, M)
