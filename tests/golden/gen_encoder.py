"""Golden fixtures for the sequence models (models/attention, conformer, decoder).

A PyTorch replica of the ESPnet modules that Auto-AVSR uses
(espnet/nets/pytorch_backend/transformer/{attention,embedding,encoder_layer,
decoder_layer,decoder}.py and the Conformer ConvolutionModule), written from
their code: MultiHeadedAttention, RelPositionMultiHeadedAttention
(rel_pos_type "latest"), RelPositionalEncoding, PositionalEncoding,
PositionwiseFeedForward, ConvolutionModule, EncoderLayer (macaron),
DecoderLayer and Decoder.forward_one_step. The replica runs in float64 on
float32-rounded parameters; parameters are saved under their ESPnet
state-dict names so the C modules load them BY NAME.

Two files (each < 300 KB):
  encoder.safetensors      encoder parameters (prefix "enc."), a one-layer
                           Transformer encoder ("tfm."), inputs, outputs,
                           gradients of the encoder parameters ("grad.enc.*")
  encoder_dec.safetensors  decoder parameters ("dec."), outputs, incremental
                           decoding steps, gradients ("grad.dec.*")
The gradients are those of the joint loss
  L = sum(enc_out * R1) + sum(decoder(ys_in, memory=enc_out) * R2)
in training mode (dropout 0, BatchNorm on masked batch statistics).
Run: /usr/bin/python3 tests/golden/gen_ops.py encoder
"""
import copy
import json
import math
import os

import torch
from torch import nn

import stio


# ---- the replica --------------------------------------------------------

class LayerNorm(nn.LayerNorm):
    def __init__(self, nout):
        super().__init__(nout, eps=1e-12)


class MultiHeadedAttention(nn.Module):
    def __init__(self, n_head, n_feat, dropout_rate):
        super().__init__()
        self.d_k = n_feat // n_head
        self.h = n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.dropout = nn.Dropout(p=dropout_rate)

    def forward_qkv(self, query, key, value):
        n = query.size(0)
        q = self.linear_q(query).view(n, -1, self.h, self.d_k).transpose(1, 2)
        k = self.linear_k(key).view(n, -1, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(value).view(n, -1, self.h, self.d_k).transpose(1, 2)
        return q, k, v

    def forward_attention(self, value, scores, mask):
        n = value.size(0)
        if mask is not None:
            mask = mask.unsqueeze(1).eq(0)
            min_value = torch.finfo(scores.dtype).min
            scores = scores.masked_fill(mask, min_value)
            attn = torch.softmax(scores, dim=-1).masked_fill(mask, 0.0)
        else:
            attn = torch.softmax(scores, dim=-1)
        x = torch.matmul(self.dropout(attn), value)
        x = x.transpose(1, 2).contiguous().view(n, -1, self.h * self.d_k)
        return self.linear_out(x)

    def forward(self, query, key, value, mask):
        q, k, v = self.forward_qkv(query, key, value)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        return self.forward_attention(v, scores, mask)


class RelPositionMultiHeadedAttention(MultiHeadedAttention):
    def __init__(self, n_head, n_feat, dropout_rate):
        super().__init__(n_head, n_feat, dropout_rate)
        self.linear_pos = nn.Linear(n_feat, n_feat, bias=False)
        self.pos_bias_u = nn.Parameter(torch.Tensor(self.h, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.Tensor(self.h, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def rel_shift(self, x):
        zero_pad = torch.zeros((*x.size()[:3], 1), device=x.device, dtype=x.dtype)
        x_padded = torch.cat([zero_pad, x], dim=-1)
        x_padded = x_padded.view(*x.size()[:2], x.size(3) + 1, x.size(2))
        return x_padded[:, :, 1:].view_as(x)[:, :, :, : x.size(-1) // 2 + 1]

    def forward(self, query, key, value, pos_emb, mask):
        q, k, v = self.forward_qkv(query, key, value)
        q = q.transpose(1, 2)
        nb = pos_emb.size(0)
        p = self.linear_pos(pos_emb).view(nb, -1, self.h, self.d_k).transpose(1, 2)
        q_u = (q + self.pos_bias_u).transpose(1, 2)
        q_v = (q + self.pos_bias_v).transpose(1, 2)
        ac = torch.matmul(q_u, k.transpose(-2, -1))
        bd = self.rel_shift(torch.matmul(q_v, p.transpose(-2, -1)))
        scores = (ac + bd) / math.sqrt(self.d_k)
        return self.forward_attention(v, scores, mask)


def sinusoid(positions, d):
    pe = torch.zeros(len(positions), d, dtype=torch.float64)
    position = torch.tensor(positions, dtype=torch.float64).unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * -(math.log(10000.0) / d))
    pe[:, 0::2] = torch.sin(position * div)
    pe[:, 1::2] = torch.cos(position * div)
    return pe


class RelPositionalEncoding(nn.Module):
    """ESPnet RelPositionalEncoding: x * sqrt(d), pos_emb [1, 2T-1, d]."""

    def __init__(self, d, dropout_rate):
        super().__init__()
        self.d = d
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x):
        T = x.size(1)
        pos = torch.flip(sinusoid(list(range(T)), self.d), [0])
        neg = sinusoid([-t for t in range(T)], self.d)[1:]
        pe = torch.cat([pos, neg], 0).unsqueeze(0).to(x.dtype)
        return self.dropout(x * math.sqrt(self.d)), self.dropout(pe)


class PositionalEncoding(nn.Module):
    def __init__(self, d, dropout_rate):
        super().__init__()
        self.d = d
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x):
        pe = sinusoid(list(range(x.size(1))), self.d).to(x.dtype).unsqueeze(0)
        return self.dropout(x * math.sqrt(self.d) + pe)


class PositionwiseFeedForward(nn.Module):
    def __init__(self, idim, hidden, dropout_rate, activation):
        super().__init__()
        self.w_1 = nn.Linear(idim, hidden)
        self.w_2 = nn.Linear(hidden, idim)
        self.dropout = nn.Dropout(dropout_rate)
        self.activation = activation

    def forward(self, x):
        return self.w_2(self.dropout(self.activation(self.w_1(x))))


def masked_batch_norm(bn, x, valid):
    """BatchNorm1d in training mode with statistics over valid frames only
    (valid [B, T] bool); running statistics updated with the unbiased
    variance over those frames. valid = None: plain F.batch_norm."""
    if valid is None or not bn.training:
        return bn(x)
    m = valid.unsqueeze(1).to(x.dtype)  # [B, 1, T]
    n = m.sum()
    mean = (x * m).sum((0, 2)) / n
    var = (((x - mean[None, :, None]) ** 2) * m).sum((0, 2)) / n
    with torch.no_grad():
        bn.running_mean.mul_(1 - bn.momentum).add_(bn.momentum * mean)
        bn.running_var.mul_(1 - bn.momentum).add_(bn.momentum * var * n / (n - 1))
        bn.num_batches_tracked += 1
    y = (x - mean[None, :, None]) / torch.sqrt(var[None, :, None] + bn.eps)
    return y * bn.weight[None, :, None] + bn.bias[None, :, None]


class ConvolutionModule(nn.Module):
    def __init__(self, channels, kernel_size):
        super().__init__()
        self.pointwise_conv1 = nn.Conv1d(channels, 2 * channels, 1)
        self.depthwise_conv = nn.Conv1d(channels, channels, kernel_size,
                                        padding=(kernel_size - 1) // 2, groups=channels)
        self.norm = nn.BatchNorm1d(channels)
        self.pointwise_conv2 = nn.Conv1d(channels, channels, 1)
        self.activation = nn.SiLU()
        self.valid = None       # [B, T] bool for masked BN statistics (our extension)
        self.zero_pad = False   # zero padded frames before depthwise (our extension)

    def forward(self, x):
        x = x.transpose(1, 2)
        x = nn.functional.glu(self.pointwise_conv1(x), dim=1)
        if self.zero_pad and self.valid is not None:
            x = x.masked_fill(~self.valid.unsqueeze(1), 0.0)
        x = self.depthwise_conv(x)
        x = self.activation(masked_batch_norm(self.norm, x, self.valid))
        return self.pointwise_conv2(x).transpose(1, 2)


class EncoderLayer(nn.Module):
    def __init__(self, size, self_attn, feed_forward, conv_module, dropout_rate, macaron):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.ff_scale = 1.0
        self.conv_module = conv_module
        self.macaron_style = macaron
        self.norm_ff = LayerNorm(size)
        self.norm_mha = LayerNorm(size)
        if macaron:
            self.feed_forward_macaron = copy.deepcopy(feed_forward)
            self.ff_scale = 0.5
            self.norm_ff_macaron = LayerNorm(size)
        if conv_module is not None:
            self.norm_conv = LayerNorm(size)
            self.norm_final = LayerNorm(size)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x_input, mask):
        if isinstance(x_input, tuple):
            x, pos_emb = x_input
        else:
            x, pos_emb = x_input, None
        if self.macaron_style:
            x = x + self.ff_scale * self.dropout(self.feed_forward_macaron(self.norm_ff_macaron(x)))
        h = self.norm_mha(x)
        if pos_emb is not None:
            h = self.self_attn(h, h, h, pos_emb, mask)
        else:
            h = self.self_attn(h, h, h, mask)
        x = x + self.dropout(h)
        if self.conv_module is not None:
            x = x + self.dropout(self.conv_module(self.norm_conv(x)))
        x = x + self.ff_scale * self.dropout(self.feed_forward(self.norm_ff(x)))
        if self.conv_module is not None:
            x = self.norm_final(x)
        if pos_emb is not None:
            return (x, pos_emb), mask
        return x, mask


class Encoder(nn.Module):
    def __init__(self, idim, d, heads, ffn, layers, kernel, conformer=True):
        super().__init__()
        pe = RelPositionalEncoding(d, 0.0) if conformer else PositionalEncoding(d, 0.0)
        self.embed = nn.Sequential(nn.Linear(idim, d), pe)
        att = (lambda: RelPositionMultiHeadedAttention(heads, d, 0.0)) if conformer else \
            (lambda: MultiHeadedAttention(heads, d, 0.0))
        self.encoders = nn.ModuleList([
            EncoderLayer(d, att(), PositionwiseFeedForward(d, ffn, 0.0, nn.ReLU()),
                         ConvolutionModule(d, kernel) if conformer else None, 0.0, conformer)
            for _ in range(layers)])
        self.after_norm = LayerNorm(d)

    def set_padding(self, valid, zero_pad):
        for l in self.encoders:
            if l.conv_module is not None:
                l.conv_module.valid = valid
                l.conv_module.zero_pad = zero_pad

    def forward(self, x, mask, taps=None):
        x = self.embed(x)
        if taps is not None:
            taps["in0"] = x
        for l in self.encoders:
            x, mask = l(x, mask)
        if isinstance(x, tuple):
            x = x[0]
        return self.after_norm(x)


class DecoderLayer(nn.Module):
    def __init__(self, size, self_attn, src_attn, feed_forward, dropout_rate):
        super().__init__()
        self.size = size
        self.self_attn = self_attn
        self.src_attn = src_attn
        self.feed_forward = feed_forward
        self.norm1 = LayerNorm(size)
        self.norm2 = LayerNorm(size)
        self.norm3 = LayerNorm(size)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, tgt, tgt_mask, memory, memory_mask, cache=None):
        residual = tgt
        tgt = self.norm1(tgt)
        if cache is None:
            tgt_q, tgt_q_mask = tgt, tgt_mask
        else:
            assert cache.shape == (tgt.shape[0], tgt.shape[1] - 1, self.size)
            tgt_q = tgt[:, -1:, :]
            residual = residual[:, -1:, :]
            tgt_q_mask = None if tgt_mask is None else tgt_mask[:, -1:, :]
        x = residual + self.dropout(self.self_attn(tgt_q, tgt, tgt, tgt_q_mask))
        x = x + self.dropout(self.src_attn(self.norm2(x), memory, memory, memory_mask))
        x = x + self.dropout(self.feed_forward(self.norm3(x)))
        if cache is not None:
            x = torch.cat([cache, x], dim=1)
        return x, tgt_mask, memory, memory_mask


def subsequent_mask(n):
    return torch.tril(torch.ones(n, n, dtype=torch.bool))


class Decoder(nn.Module):
    def __init__(self, odim, d, heads, ffn, layers):
        super().__init__()
        self.embed = nn.Sequential(nn.Embedding(odim, d), PositionalEncoding(d, 0.0))
        self.decoders = nn.ModuleList([
            DecoderLayer(d, MultiHeadedAttention(heads, d, 0.0), MultiHeadedAttention(heads, d, 0.0),
                         PositionwiseFeedForward(d, ffn, 0.0, nn.ReLU()), 0.0)
            for _ in range(layers)])
        self.after_norm = LayerNorm(d)
        self.output_layer = nn.Linear(d, odim)

    def forward(self, tgt, tgt_mask, memory, memory_mask, nlayers=None):
        x = self.embed(tgt)
        for l in self.decoders[:nlayers]:
            x, tgt_mask, memory, memory_mask = l(x, tgt_mask, memory, memory_mask)
        return self.output_layer(self.after_norm(x))

    def forward_one_step(self, tgt, tgt_mask, memory, memory_mask=None, cache=None):
        x = self.embed(tgt)
        if cache is None:
            cache = [None] * len(self.decoders)
        new_cache = []
        for c, l in zip(cache, self.decoders):
            x, tgt_mask, memory, memory_mask = l(x, tgt_mask, memory, memory_mask, cache=c)
            new_cache.append(x)
        y = torch.log_softmax(self.output_layer(self.after_norm(x[:, -1])), dim=-1)
        return y, new_cache


def add_sos_eos(ys_pad, sos, eos, ignore_id):
    ys = [y[y != ignore_id] for y in ys_pad]
    L = max(len(y) for y in ys) + 1
    ys_in = torch.full((len(ys), L), eos, dtype=torch.int64)
    ys_out = torch.full((len(ys), L), ignore_id, dtype=torch.int64)
    for b, y in enumerate(ys):
        ys_in[b, 0] = sos
        ys_in[b, 1:len(y) + 1] = y
        ys_out[b, :len(y)] = y
        ys_out[b, len(y)] = eos
    return ys_in, ys_out


def non_pad_mask(lengths, T):
    return torch.arange(T)[None, :] < lengths[:, None]  # [B, T] bool


# ---- fixtures -----------------------------------------------------------

def randomise(model, gen):
    """Default init plus non-trivial norms, biases and running statistics."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype != torch.float32:
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif name.endswith("running_mean"):
                t.copy_(0.2 * torch.randn(t.shape, generator=gen))
            elif "norm" in name.split(".")[-2] and name.endswith("weight"):
                t.copy_(1.0 + 0.2 * torch.randn(t.shape, generator=gen))
            elif "norm" in name.split(".")[-2] and name.endswith("bias"):
                t.copy_(0.1 * torch.randn(t.shape, generator=gen))


def state(prefix, model, out):
    for k, v in model.state_dict().items():
        out[prefix + k] = v.detach().clone()


def main(outdir):
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(99)
    B, T, idim, d, H, ffn, K, NL = 3, 13, 12, 24, 4, 28, 5, 2
    V, Ly = 13, 6
    lengths = torch.tensor([13, 10, 5])
    enc = Encoder(idim, d, H, ffn, NL, K, conformer=True)
    tfm = Encoder(idim, d, H, ffn, 1, K, conformer=False)
    dec = Decoder(V, d, H, ffn, NL)
    for m in (enc, tfm, dec):
        randomise(m, gen)
    f1, f2 = {}, {}
    state("enc.", enc, f1)
    state("tfm.", tfm, f1)
    state("dec.", dec, f2)
    enc64, tfm64, dec64 = enc.double(), tfm.double(), dec.double()

    x = torch.rand(B, T, idim, generator=gen, dtype=torch.float64) * 2 - 1
    valid = non_pad_mask(lengths, T)
    mask = valid.unsqueeze(1)  # [B, 1, T]
    f1["x"] = x
    f1["lengths"] = lengths

    # eval mode: one layer, whole encoder, Transformer encoder
    enc64.eval()
    tfm64.eval()
    with torch.no_grad():
        enc64.set_padding(None, False)
        taps = {}
        f1["enc.out_eval"] = enc64(x, mask, taps)
        xin, pos = taps["in0"]
        f1["layer0.in"], f1["layer0.pos"] = xin, pos
        f1["layer0.out_eval"] = enc64.encoders[0]((xin, pos), mask)[0][0]
        f1["tfm.out_eval"] = tfm64(x, mask)

    # training mode, ESPnet-exact (unmasked BN) and with zero padding: outputs only
    for tag, valid_, zp in (("out_train_espnet", None, False), ("out_train_zeropad", valid, True)):
        e = copy.deepcopy(enc64).train()
        e.set_padding(valid_, zp)
        with torch.no_grad():
            f1["enc." + tag] = e(x, mask)

    # joint training-mode loss (masked BN statistics)
    enc64.train()
    dec64.train()
    enc64.set_padding(valid, False)
    ys = torch.tensor([[3, 5, 1, 7, 2, 9], [4, 4, 8, -1, -1, -1], [11, 2, -1, -1, -1, -1]])
    sos = eos = V - 1
    ys_in, ys_out = add_sos_eos(ys, sos, eos, -1)
    L = ys_in.size(1)
    tgt_mask = (ys_in != -1).unsqueeze(-2) & subsequent_mask(L).unsqueeze(0)
    R1 = torch.rand(B, T, d, generator=gen, dtype=torch.float64) * 2 - 1
    R2 = torch.rand(B, L, V, generator=gen, dtype=torch.float64) * 2 - 1
    enc_out = enc64(x, mask)
    logits = dec64(ys_in, tgt_mask, enc_out, mask)
    loss = (enc_out * R1).sum() + (logits * R2).sum()
    enc64.zero_grad()
    dec64.zero_grad()
    loss.backward()
    f1["enc.out_train"] = enc_out
    f1["R1"] = R1
    for k, v in enc64.state_dict().items():
        if "running" in k:
            f1["enc." + k + ".after"] = v
    for k, p in enc64.named_parameters():
        f1["grad.enc." + k] = p.grad
    for k, p in dec64.named_parameters():
        f2["grad.dec." + k] = p.grad
    f2["ys"], f2["ys_in"], f2["ys_out"] = ys, ys_in, ys_out
    f2["R2"] = R2
    f2["memory"] = enc_out.detach()
    f2["dec.logits"] = logits
    f1["loss"] = loss.reshape(1)

    # one decoder layer (decoder with only layer 0), and incremental decoding
    dec64.eval()
    mem = enc_out.detach()
    with torch.no_grad():
        f2["dec1.logits"] = dec64(ys_in, tgt_mask, mem, mask, nlayers=1)
        cache, steps = None, []
        for l in range(1, L + 1):
            y, cache = dec64.forward_one_step(ys_in[:, :l], subsequent_mask(l).unsqueeze(0),
                                              mem, mask, cache)
            steps.append(y)
        f2["dec.steps"] = torch.stack(steps)  # [L, B, V]

    meta = {"encoder": {"B": B, "T": T, "idim": idim, "d": d, "heads": H, "ffn": ffn,
                        "kernel": K, "layers": NL, "eps": 1e-12, "loss": float(loss)},
            "decoder": {"V": V, "sos": sos, "eos": eos, "ignore": -1, "layers": NL}}
    stio.save(os.path.join(outdir, "encoder.safetensors"), f1, meta)
    stio.save(os.path.join(outdir, "encoder_dec.safetensors"), f2, meta)
