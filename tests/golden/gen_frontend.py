"""Golden fixtures for the frontends and fusion (models/visual_frontend.h,
models/audio_frontend.h, models/fusion.h).

Writes <outdir>/frontend.safetensors (the C=8 visual frontend, forward in
training and evaluation mode) and <outdir>/frontend_grad.safetensors (small
configurations with the gradients of every parameter: visual C=4 with PReLU,
ResNet1D, Conv2d subsampling, filterbank projection, the fusion kinds).

The PyTorch modules below are replicas of Auto-AVSR's
(espnet/nets/pytorch_backend/backbones/conv3d_extractor.py, conv1d_extractor.py,
modules/resnet.py, modules/resnet1d.py, MLPHead) and ESPnet's
Conv2dSubsampling, with the same module names, so their state dicts use the
names the C modules register. Differences, all configuration: the width and
blocks per stage are parameters, and batch norm in training mode leaves padded
frames out of its statistics (masked_bn; for the per-frame 2D trunk this is
checked against running nn.BatchNorm2d on the packed valid frames).

Per case "<c>": "<c>.p.<name>" the state dict before the step (parameters
rounded to float16 and stored as F16 to keep the files small; the C side
reads them with avsr_st_read_f32, so both sides use identical values), the
inputs, "<c>.y" the output, "<c>.R" the upstream gradient
(loss = (y * R).sum()), "<c>.g.<name>" the gradient of every parameter, and
"<c>.after.<name>" the running statistics after the training step. Lengths
and settings are JSON metadata under "<c>".
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

import stio

stio._DT.setdefault(torch.float16, "F16")

T = {}
META = {}


def put(name, t):
    T[name] = t.detach().clone()


# ------------------------------------------------------------ masked batch norm

def masked_bn(bn, x, mask):
    """bn (an nn.BatchNorm*d) applied to x [B, C, S0, *]; in training mode
    the statistics come from positions where mask [B, S0] is true only, the
    running statistics are updated with them (unbiased variance) and every
    position is normalised with them."""
    if mask is None or not bn.training:
        return bn(x)
    shape = [x.shape[0], 1, x.shape[2]] + [1] * (x.dim() - 3)
    m = mask.to(x.dtype).reshape(shape).expand_as(x)
    dims = [0] + list(range(2, x.dim()))
    n = m.sum(dims)
    cshape = [1, -1] + [1] * (x.dim() - 2)
    mean = (x * m).sum(dims) / n
    var = (((x - mean.reshape(cshape)) ** 2) * m).sum(dims) / n
    y = (x - mean.reshape(cshape)) / torch.sqrt(var.reshape(cshape) + bn.eps)
    y = y * bn.weight.reshape(cshape) + bn.bias.reshape(cshape)
    with torch.no_grad():
        mo = bn.momentum
        bn.running_mean.mul_(1 - mo).add_(mo * mean)
        bn.running_var.mul_(1 - mo).add_(mo * var * n / (n - 1))
        bn.num_batches_tracked += 1
    return y


def extent_mask(B, S, ext):
    if ext is None:
        return None
    return torch.arange(S).unsqueeze(0) < torch.tensor(ext).unsqueeze(1)


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


def make_act(kind, n):
    return {"swish": lambda: Swish(), "relu": lambda: nn.ReLU(),
            "prelu": lambda: nn.PReLU(num_parameters=n)}[kind]()


# ------------------------------------------------------------ ResNet trunks

class BasicBlock(nn.Module):
    """modules/resnet.py BasicBlock (nd=2) and resnet1d.py BasicBlock1D (nd=1)."""

    def __init__(self, nd, inplanes, planes, stride, downsample, relu_type):
        super().__init__()
        conv = nn.Conv2d if nd == 2 else nn.Conv1d
        bn = nn.BatchNorm2d if nd == 2 else nn.BatchNorm1d
        self.conv1 = conv(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = bn(planes)
        self.relu1 = make_act(relu_type, planes)
        self.relu2 = make_act(relu_type, planes)
        self.conv2 = conv(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = bn(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x, ext):
        out = self.conv1(x)
        m = extent_mask(out.shape[0], out.shape[2], ext)
        out = self.relu1(masked_bn(self.bn1, out, m))
        out = masked_bn(self.bn2, self.conv2(out), m)
        res = x
        if self.downsample is not None:
            res = masked_bn(self.downsample[1], self.downsample[0](x), m)
        return self.relu2(out + res)


def make_stages(owner, nd, inplanes, widths, depth, relu_type):
    conv = nn.Conv2d if nd == 2 else nn.Conv1d
    bn = nn.BatchNorm2d if nd == 2 else nn.BatchNorm1d
    for s, (planes, n) in enumerate(zip(widths, depth)):
        stride = 1 if s == 0 else 2
        down = None
        if stride != 1 or inplanes != planes:
            down = nn.Sequential(conv(inplanes, planes, 1, stride, bias=False), bn(planes))
        blocks = [BasicBlock(nd, inplanes, planes, stride, down, relu_type)]
        inplanes = planes
        blocks += [BasicBlock(nd, planes, planes, 1, None, relu_type) for _ in range(1, n)]
        setattr(owner, "layer%d" % (s + 1), nn.Sequential(*blocks))


def run_stages(owner, x, ext):
    for s in range(4):
        for blk in getattr(owner, "layer%d" % (s + 1)):
            if ext is not None and blk.stride != 1:
                ext = [(e - 1) // blk.stride + 1 if e > 0 else 0 for e in ext]
            x = blk(x, ext)
    return x


class ResNet(nn.Module):
    def __init__(self, width, depth, relu_type):
        super().__init__()
        make_stages(self, 2, width, [width, 2 * width, 4 * width, 8 * width], depth, relu_type)
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x, ext):
        x = self.avgpool(run_stages(self, x, ext))
        return x.view(x.size(0), -1)


class Conv3dResNet(nn.Module):
    """conv3d_extractor.py Conv3dResNet with width C and depth as settings."""

    def __init__(self, width=64, depth=(2, 2, 2, 2), relu_type="swish"):
        super().__init__()
        self.trunk = ResNet(width, depth, relu_type)
        self.frontend3D = nn.Sequential(
            nn.Conv3d(1, width, (5, 7, 7), (1, 2, 2), (2, 3, 3), bias=False),
            nn.BatchNorm3d(width),
            make_act(relu_type, width),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))

    def forward(self, video, lengths):  # video [B, T, H, W]
        B, Tn = video.shape[:2]
        x = self.frontend3D[0](video.unsqueeze(1))
        x = masked_bn(self.frontend3D[1], x, extent_mask(B, Tn, lengths))
        x = self.frontend3D[3](self.frontend3D[2](x))
        C, H, W = x.shape[1], x.shape[3], x.shape[4]
        x = x.transpose(1, 2).reshape(B * Tn, C, H, W)
        ext = None
        if lengths is not None:
            ext = [H if t < lengths[b] else 0 for b in range(B) for t in range(Tn)]
        return self.trunk(x, ext).view(B, Tn, -1)


class ResNet1D(nn.Module):
    def __init__(self, width, depth, relu_type, pool):
        super().__init__()
        self.conv1 = nn.Conv1d(1, width, 80, 4, 38, bias=False)
        self.bn1 = nn.BatchNorm1d(width)
        self.relu = make_act(relu_type, width)
        make_stages(self, 1, width, [width, 2 * width, 4 * width, 8 * width], depth, relu_type)
        self.avgpool = nn.AvgPool1d(pool, pool)

    def forward(self, x, ext):
        x = self.conv1(x)
        x = self.relu(masked_bn(self.bn1, x, extent_mask(x.shape[0], x.shape[2], ext)))
        return self.avgpool(run_stages(self, x, ext))


class Conv1dResNet(nn.Module):
    def __init__(self, width=64, depth=(2, 2, 2, 2), relu_type="swish", pool=20):
        super().__init__()
        self.hop = 32 * pool
        self.trunk = ResNet1D(width, depth, relu_type, pool)

    def forward(self, wave, lengths):  # wave [B, L]
        L = wave.shape[1] // self.hop * self.hop
        x = wave[:, :L].unsqueeze(1)
        ext = None if lengths is None else [min(l, L) // 4 for l in lengths]
        return self.trunk(x, ext).transpose(1, 2)


class Conv2dSubsampling(nn.Module):
    """ESPnet transformer/subsampling.py Conv2dSubsampling without pos_enc."""

    def __init__(self, idim, channels, odim):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, channels, 3, 2), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, 2), nn.ReLU())
        self.out = nn.Sequential(nn.Linear(channels * (((idim - 1) // 2 - 1) // 2), odim))

    def forward(self, feats):  # [B, idim, T]
        x = self.conv(feats.transpose(1, 2).unsqueeze(1))
        b, c, t, f = x.size()
        return self.out[0](x.transpose(1, 2).contiguous().view(b, t, c * f))


class FbankProj(nn.Module):
    def __init__(self, idim, odim):
        super().__init__()
        self.proj = nn.Linear(idim, odim)

    def forward(self, x):
        return self.proj(x)


class MLPHead(nn.Module):
    """Auto-AVSR MLPHead (norm="batchnorm"), padded frames masked in BN."""

    def __init__(self, idim, hdim, odim):
        super().__init__()
        self.fc1 = nn.Linear(idim, hdim)
        self.bn1 = nn.BatchNorm1d(hdim)
        self.nonlin1 = nn.ReLU()
        self.fc2 = nn.Linear(hdim, odim)

    def forward(self, x, lengths):
        x = self.fc1(x)
        m = extent_mask(x.shape[0], x.shape[1], lengths)
        x = masked_bn(self.bn1, x.transpose(1, 2), m).transpose(1, 2)
        return self.fc2(self.nonlin1(x))


class Gated(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.gate = nn.Linear(2 * d, d)

    def forward(self, a, v):
        g = torch.sigmoid(self.gate(torch.cat([a, v], -1)))
        return g * a + (1 - g) * v


# ------------------------------------------------------------ case helpers

def randomise(model):
    """Random BN affine parameters, running statistics and PReLU slopes, then
    round every float tensor to float16 (values stored as F16)."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
                mod.weight.uniform_(0.6, 1.4)
                mod.bias.uniform_(-0.3, 0.3)
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.6, 1.4)
            if isinstance(mod, nn.PReLU):
                mod.weight.uniform_(0.05, 0.4)
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())


def save_state(case, model, tag="p"):
    for k, v in model.state_dict().items():
        if tag == "p":
            put("%s.p.%s" % (case, k), v.half() if v.is_floating_point() else v)
        elif "running" in k or "num_batches" in k:
            put("%s.%s.%s" % (case, tag, k), v)


def save_grads(case, model):
    for k, p in model.named_parameters():
        put("%s.g.%s" % (case, k), p.grad)


def backward(case, y):
    R = torch.rand(y.shape) * 2 - 1
    (y * R).sum().backward()
    put(case + ".y", y)
    put(case + ".R", R)


def f16(*shape, lo=-1.0, hi=1.0):
    return (torch.rand(*shape) * (hi - lo) + lo).half().float()


# ------------------------------------------------------------ cases

def case_vis8():
    """C=8, ROI 24, T=6, B=2, lengths [6, 4], depth 1/1/1/1, Swish: forward
    in training mode (masked BN) and then in evaluation mode."""
    c = "vis8"
    m = Conv3dResNet(8, (1, 1, 1, 1), "swish")
    randomise(m)
    save_state(c, m)
    x = f16(2, 6, 24, 24, lo=-2, hi=2)
    lengths = [6, 4]
    put(c + ".x", x.half())
    m.train()
    y = m(x, lengths)
    put(c + ".y", y)
    save_state(c, m, "after")
    m.eval()
    with torch.no_grad():
        put(c + ".y_eval", m(x, lengths))
    META[c] = {"width": 8, "depth": [1, 1, 1, 1], "act": "swish", "roi": 24,
               "lengths": lengths}

    # the per-row mask of the 2D trunk equals BN on the packed valid frames
    bn = nn.BatchNorm2d(4)
    bn.train()
    z = torch.randn(6, 4, 3, 3)
    valid = torch.tensor([1, 1, 0, 1, 0, 1], dtype=torch.bool)
    bn2 = nn.BatchNorm2d(4)
    bn2.train()
    a = masked_bn(bn, z, valid.unsqueeze(1).expand(6, 3))[valid]
    b = bn2(z[valid])
    assert torch.allclose(a, b, atol=1e-5), "masked BN differs from BN on packed frames"
    assert torch.allclose(bn.running_var, bn2.running_var, atol=1e-6)


def case_vis4():
    """C=4, ROI 16, T=5, B=2, lengths [5, 3], depth 2/1/1/1, PReLU (AV-HuBERT):
    training-mode forward and all parameter gradients."""
    c = "vis4"
    m = Conv3dResNet(4, (2, 1, 1, 1), "prelu")
    randomise(m)
    save_state(c, m)
    x = f16(2, 5, 16, 16, lo=-2, hi=2)
    lengths = [5, 3]
    put(c + ".x", x.half())
    m.train()
    backward(c, m(x, lengths))
    save_grads(c, m)
    save_state(c, m, "after")
    META[c] = {"width": 4, "depth": [2, 1, 1, 1], "act": "prelu", "roi": 16,
               "lengths": lengths}


def case_a1d():
    """ResNet1D width 4, depth 1/1/1/1, Swish, pool 20; L = 2000 samples
    (truncated to 1920 = 3 frames), lengths [2000, 1300]."""
    c = "a1d"
    m = Conv1dResNet(4, (1, 1, 1, 1), "swish", 20)
    randomise(m)
    save_state(c, m)
    x = f16(2, 2000)
    lengths = [2000, 1300]
    put(c + ".x", x.half())
    m.train()
    backward(c, m(x, lengths))
    save_grads(c, m)
    save_state(c, m, "after")
    META[c] = {"width": 4, "depth": [1, 1, 1, 1], "act": "swish", "pool": 20,
               "lengths": lengths, "out_lengths": [min(l, 1920) // 640 for l in lengths]}


def case_sub():
    """Conv2dSubsampling idim 80, channels 6, odim 10, Tm 23."""
    c = "sub"
    m = Conv2dSubsampling(80, 6, 10)
    randomise(m)
    save_state(c, m)
    x = f16(2, 80, 23, lo=-2, hi=2).requires_grad_(True)
    put(c + ".x", x.half())
    backward(c, m(x))
    save_grads(c, m)
    put(c + ".g_x", x.grad)
    META[c] = {"idim": 80, "channels": 6, "odim": 10, "lengths": [23, 15],
               "out_lengths": [(((l - 1) // 2 - 1) // 2) for l in [23, 15]]}


def case_fbank():
    c = "fbank"
    m = FbankProj(104, 12)
    randomise(m)
    save_state(c, m)
    x = f16(2, 5, 104).requires_grad_(True)
    put(c + ".x", x.half())
    backward(c, m(x))
    save_grads(c, m)
    put(c + ".g_x", x.grad)
    META[c] = {"in": 104, "out": 12}


def case_fusion_mlp():
    """Concat + MLP (Auto-AVSR MLPHead): video [2, 6, 6], audio [2, 7, 5]
    (trimmed to 6), lengths video [6, 4], audio [7, 5] -> [6, 4]."""
    c = "fmlp"
    m = MLPHead(11, 10, 7)
    randomise(m)
    save_state(c, m)
    v = f16(2, 6, 6, lo=-2, hi=2).requires_grad_(True)
    a = f16(2, 7, 5, lo=-2, hi=2).requires_grad_(True)
    put(c + ".v", v)
    put(c + ".a", a)
    m.train()
    backward(c, m(torch.cat([v, a[:, :6]], -1), [6, 4]))
    save_grads(c, m)
    put(c + ".g_v", v.grad)
    put(c + ".g_a", a.grad)
    save_state(c, m, "after")
    META[c] = {"dim_v": 6, "dim_a": 5, "hidden": 10, "out_dim": 7,
               "len_v": [6, 4], "len_a": [7, 5], "out_lengths": [6, 4]}


def case_fusion_add():
    """Add with PAD reconciliation: video [2, 4, 5], audio [2, 6, 5]."""
    c = "fadd"
    v = f16(2, 4, 5).requires_grad_(True)
    a = f16(2, 6, 5).requires_grad_(True)
    put(c + ".v", v)
    put(c + ".a", a)
    backward(c, a + F.pad(v, (0, 0, 0, 2)))
    put(c + ".g_v", v.grad)
    put(c + ".g_a", a.grad)
    META[c] = {"dim": 5}


def case_fusion_gated():
    c = "fgate"
    m = Gated(6)
    randomise(m)
    save_state(c, m)
    v = f16(2, 5, 6, lo=-2, hi=2).requires_grad_(True)
    a = f16(2, 5, 6, lo=-2, hi=2).requires_grad_(True)
    put(c + ".v", v)
    put(c + ".a", a)
    backward(c, m(a, v))
    save_grads(c, m)
    put(c + ".g_v", v.grad)
    put(c + ".g_a", a.grad)
    META[c] = {"dim": 6}


def main(outdir):
    global T, META
    torch.manual_seed(20240611)
    T, META = {}, {}
    case_vis8()
    stio.save(os.path.join(outdir, "frontend.safetensors"), T, META)
    T, META = {}, {}
    case_vis4()
    case_a1d()
    case_sub()
    case_fbank()
    case_fusion_mlp()
    case_fusion_add()
    case_fusion_gated()
    stio.save(os.path.join(outdir, "frontend_grad.safetensors"), T, META)


if __name__ == "__main__":
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "ops"))
