"""Golden fixtures for the whole AV model (models/avsr_model.h, builder.h).

A PyTorch replica of Auto-AVSR's audio-visual model (AA1
espnet/nets/pytorch_backend/e2e_asr_conformer_av.py) at tiny sizes, built
from the replicas of gen_frontend.py (Conv3dResNet, Conv1dResNet, MLPHead)
and gen_encoder.py (ESPnet Conformer encoder, Transformer decoder):

    encoder      = video frontend (encoder.frontend) + Conformer
    aux_encoder  = audio ResNet1D (aux_encoder.frontend) + Conformer
    fusion       = MLPHead(cat(video, audio)) (Linear -> BN1d -> ReLU -> Linear)
    ctc.ctc_lo   = Linear(d -> V); CTC: sum over utterances (zero_infinity) / B
    decoder      = ESPnet Transformer decoder; LabelSmoothingLoss
                   (normalize_length=False: sum / B)
    loss         = w * ctc + (1 - w) * att; acc = th_accuracy

Files:
  model_sd.safetensors  the state dict (Auto-AVSR names; floats rounded to
                        float16 and stored as F16, counters I64): what the C
                        model loads through models/maps/auto_avsr_av.map
  model.safetensors     per case "<c>": inputs (video, audio; F16-rounded),
                        outputs (enc = fused features, ctc logits, decoder
                        logits), losses (ctc, att, total, acc), and for the
                        training case "train.g.<name>" the gradient of every
                        parameter of the total loss.
Cases:
  train  training mode, no padding (BatchNorm on batch statistics, which the
         C side's masked statistics equal when nothing is padded), dropout 0
  eval   evaluation mode (running statistics), padded clips (lengths 8, 5)
The replica runs in float64 on the float16-rounded parameters.
Run: /usr/bin/python3 tests/golden/gen_ops.py model
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

import stio
from gen_encoder import Decoder, Encoder, add_sos_eos, subsequent_mask
from gen_frontend import Conv1dResNet, Conv3dResNet, MLPHead

stio._DT.setdefault(torch.float16, "F16")

# tiny sizes (the C test builds the same model from a recipe `model:` section)
CFG = dict(V=11, vw=4, aw=4, depth=(1, 1, 1, 1), d=16, heads=2, ffn=32, layers=2, kernel=5,
           hidden=32, dec_layers=1, ctc_weight=0.3, lsm=0.1, roi=20, B=2, T=8)


class CTC(nn.Module):
    def __init__(self, odim, d):
        super().__init__()
        self.ctc_lo = nn.Linear(d, odim)


class E2EAV(nn.Module):
    """Auto-AVSR e2e_asr_conformer_av.E2E (mtlalpha < 1, adim == ddim)."""

    def __init__(self, c):
        super().__init__()
        d = c["d"]
        self.encoder = Encoder(8 * c["vw"], d, c["heads"], c["ffn"], c["layers"], c["kernel"])
        self.encoder.frontend = Conv3dResNet(c["vw"], c["depth"], "swish")
        self.aux_encoder = Encoder(8 * c["aw"], d, c["heads"], c["ffn"], c["layers"], c["kernel"])
        self.aux_encoder.frontend = Conv1dResNet(c["aw"], c["depth"], "swish", 20)
        self.fusion = MLPHead(2 * d, c["hidden"], d)
        self.decoder = Decoder(c["V"], d, c["heads"], c["ffn"], c["dec_layers"])
        self.ctc = CTC(c["V"], d)
        self.V = c["V"]
        self.w = c["ctc_weight"]
        self.lsm = c["lsm"]

    def forward(self, video, audio, lengths, ys):
        B, T = video.shape[:2]
        vmask = (torch.arange(T)[None, :] < lengths[:, None]).unsqueeze(1)  # [B, 1, T]
        vf = self.encoder.frontend(video, None)
        v = self.encoder(vf, vmask)
        af = self.aux_encoder.frontend(audio, None)
        amask = (torch.arange(af.shape[1])[None, :] < lengths[:, None]).unsqueeze(1)
        a = self.aux_encoder(af, amask)
        x = self.fusion(torch.cat([v, a], -1), None)
        # CTC (builtin, reduce): sum / B
        logits = self.ctc.ctc_lo(x)
        ylens = (ys != -1).sum(1)
        flat = torch.cat([y[y != -1] for y in ys])
        loss_ctc = F.ctc_loss(logits.transpose(0, 1).log_softmax(2), flat, lengths, ylens,
                              blank=0, reduction="sum", zero_infinity=True) / B
        # decoder + LabelSmoothingLoss(normalize_length=False)
        sos = eos = self.V - 1
        ys_in, ys_out = add_sos_eos(ys, sos, eos, -1)
        L = ys_in.size(1)
        tgt_mask = (ys_in != -1).unsqueeze(-2) & subsequent_mask(L).unsqueeze(0)
        pred = self.decoder(ys_in, tgt_mask, x, vmask)
        xv = pred.reshape(-1, self.V)
        t = ys_out.reshape(-1)
        ignore = t == -1
        true = torch.full_like(xv, self.lsm / (self.V - 1))
        true.scatter_(1, t.masked_fill(ignore, 0).unsqueeze(1), 1.0 - self.lsm)
        kl = F.kl_div(torch.log_softmax(xv, 1), true, reduction="none")
        loss_att = kl.masked_fill(ignore.unsqueeze(1), 0).sum() / B
        loss = self.w * loss_ctc + (1 - self.w) * loss_att
        hit = (xv.argmax(1) == t) & ~ignore
        acc = hit.sum().double() / (~ignore).sum()
        return dict(enc=x, ctc_logits=logits, dec_logits=pred, ctc=loss_ctc, att=loss_att,
                    total=loss, acc=acc)


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


# Auto-AVSR's sizes (configs/model/audiovisual_backbone/resnet_conformer.yaml,
# unigram5000 -> odim 5049): parameter counts per summary module
FULL = dict(V=5049, vw=64, aw=64, depth=(2, 2, 2, 2), d=768, heads=12, ffn=3072, layers=12,
            kernel=31, hidden=8192, dec_layers=6, ctc_weight=0.1, lsm=0.1)


def module_of(name):
    if name.startswith("encoder.frontend."):
        return "visual frontend"
    if name.startswith("aux_encoder.frontend."):
        return "audio frontend"
    if name.startswith(("encoder.", "aux_encoder.")):
        return "encoder"
    return {"fusion": "fusion", "decoder": "decoder", "ctc": "ctc"}[name.split(".")[0]]


def full_counts():
    with torch.no_grad():
        m = E2EAV(FULL)
    counts = {}
    for k, p in m.named_parameters():
        counts[module_of(k)] = counts.get(module_of(k), 0) + p.numel()
    counts["total"] = sum(p.numel() for p in m.parameters())
    return counts


def main(outdir):
    torch.manual_seed(4242)
    gen = torch.Generator().manual_seed(7)
    c = CFG
    model = E2EAV(c)
    randomise(model, gen)
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    stio.save(os.path.join(outdir, "model_sd.safetensors"), sd)
    T, META = {}, {}
    B, Tn, roi = c["B"], c["T"], c["roi"]
    ys = torch.tensor([[3, 5, 1, 7, 2], [4, 4, 8, -1, -1]])
    T["ys"] = ys
    T["ylens"] = (ys != -1).sum(1)
    for case, train, lens in (("train", True, [Tn, Tn]), ("eval", False, [Tn, 5])):
        m = E2EAV(c)
        m.load_state_dict(model.state_dict())
        m = m.double()
        m.train(train)
        video = (torch.randn(B, Tn, roi, roi, generator=gen)).half().double()
        audio = (torch.randn(B, Tn * 640, generator=gen)).half().double()
        lengths = torch.tensor(lens)
        out = m(video, audio, lengths, ys)
        T[case + ".video"] = video.half()
        T[case + ".audio"] = audio.half()
        T[case + ".lengths"] = lengths
        for k, v in out.items():
            T["%s.%s" % (case, k)] = v.reshape(-1) if v.dim() == 0 else v
        if train:
            out["total"].backward()
            for k, p in m.named_parameters():
                T["%s.g.%s" % (case, k)] = p.grad
        META[case] = {"train": train, "lengths": lens}
    META["cfg"] = {k: list(v) if isinstance(v, tuple) else v for k, v in c.items()}
    META["full_counts"] = full_counts()
    stio.save(os.path.join(outdir, "model.safetensors"), T, META)


if __name__ == "__main__":
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "ops"))
