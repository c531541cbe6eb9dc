/* builder: recipe `model:` section -> avsr_model_cfg -> avsr_model (see
 * builder.h; schema in docs/models/recipe-model.md). */
#include "builder.h"

#include <stdio.h>
#include <string.h>

typedef struct rd {
    const avsr_yaml *y;
    avsr_error *err;
} rd;

/* A section that may be a mapping, absent / null, or the string "none".
 * *present: whether it exists; *node: the mapping (NULL for an empty one
 * written as "{}" is impossible: libyaml gives an empty mapping). */
static int section(rd *r, avsr_ynode *map, const char *what, const char *key, avsr_ynode **node,
                   bool *present)
{
    avsr_ynode *v = avsr_ynode_get(map, key);
    *node = NULL;
    *present = false;
    if (!v || avsr_ynode_is_null(v))
        return 0;
    if (avsr_ynode_kind_of(v) == AVSR_Y_SCALAR && !avsr_ynode_quoted(v) &&
        strcmp(avsr_ynode_str(v), "none") == 0)
        return 0;
    if (avsr_ynode_kind_of(v) != AVSR_Y_MAP)
        return avsr_yaml_error(r->y, v, r->err, "%s.%s: expected a mapping or none, got %s%s%s",
                               what, key,
                               avsr_ynode_kind_of(v) == AVSR_Y_SCALAR ? "'" : "a list",
                               avsr_ynode_kind_of(v) == AVSR_Y_SCALAR ? avsr_ynode_str(v) : "",
                               avsr_ynode_kind_of(v) == AVSR_Y_SCALAR ? "'" : "");
    *node = v;
    *present = true;
    return 0;
}

/* error if `key` is given in map: it belongs to another setting */
static int not_here(rd *r, avsr_ynode *map, const char *what, const char *key, const char *why)
{
    avsr_ynode *v = avsr_ynode_get(map, key);
    if (v)
        return avsr_yaml_error(r->y, v, r->err, "%s.%s: %s", what, key, why);
    return 0;
}

static int get_int(rd *r, avsr_ynode *map, const char *what, const char *key, int64_t def,
                   int64_t lo, int64_t hi, int64_t *out)
{
    return avsr_yaml_get_int(r->y, map, what, key, false, def, lo, hi, out, r->err);
}

static int get_f(rd *r, avsr_ynode *map, const char *what, const char *key, double def,
                 double lo, double hi, float *out)
{
    double v;
    if (avsr_yaml_get_double(r->y, map, what, key, false, def, lo, hi, &v, r->err) < 0)
        return -1;
    *out = (float)v;
    return 0;
}

static int get_depth(rd *r, avsr_ynode *map, const char *what, int depth[4])
{
    avsr_ynode *s;
    char path[128];
    snprintf(path, sizeof path, "%s.depth", what);
    if (avsr_yaml_get_seq(r->y, map, what, "depth", false, &s, r->err) < 0)
        return -1;
    if (!s)
        return 0; /* keep the default */
    if (avsr_ynode_len(s) != 4)
        return avsr_yaml_error(r->y, s, r->err, "%s: expected 4 blocks-per-stage counts, got %d",
                               path, avsr_ynode_len(s));
    for (int i = 0; i < 4; i++) {
        int64_t v;
        if (avsr_ynode_to_int(r->y, avsr_ynode_item(s, i), path, 1, 16, &v, r->err) < 0)
            return -1;
        depth[i] = (int)v;
    }
    return 0;
}

static int get_act(rd *r, avsr_ynode *map, const char *what, avsr_fe_act *act)
{
    static const char *const acts[] = {"swish", "relu", "prelu", NULL};
    const char *s;
    if (avsr_yaml_get_str(r->y, map, what, "act", false, "swish", acts, &s, r->err) < 0)
        return -1;
    *act = !strcmp(s, "swish") ? AVSR_FE_ACT_SWISH
           : !strcmp(s, "relu") ? AVSR_FE_ACT_RELU
                                : AVSR_FE_ACT_PRELU;
    return 0;
}

static int parse_video(rd *r, avsr_ynode *v, avsr_model_cfg *c)
{
    const char *w = "model.video";
    static const char *const fes[] = {"resnet", NULL};
    const char *fe;
    int64_t width, roi;
    if (avsr_yaml_get_str(r->y, v, w, "frontend", false, "resnet", fes, &fe, r->err) < 0 ||
        get_int(r, v, w, "width", 64, 1, 1024, &width) < 0 ||
        get_int(r, v, w, "roi", 88, 8, 1024, &roi) < 0 || get_depth(r, v, w, c->video.depth) < 0 ||
        get_act(r, v, w, &c->video.act) < 0)
        return -1;
    c->video.width = (int)width;
    c->video.roi = (int)roi;
    return avsr_yaml_check_unused(r->y, v, w, r->err);
}

static int parse_specaug(rd *r, avsr_ynode *a, avsr_specaug_cfg *s)
{
    const char *w = "model.audio.spec_augment";
    avsr_ynode *m;
    if (avsr_yaml_get_map(r->y, a, "model.audio", "spec_augment", false, &m, r->err) < 0)
        return -1;
    memset(s, 0, sizeof *s);
    if (!m)
        return 0;
    int64_t nt, mt, nf, mf;
    bool fill;
    if (get_int(r, m, w, "time_masks", 2, 0, 64, &nt) < 0 ||
        get_int(r, m, w, "max_time", 40, 0, 10000, &mt) < 0 ||
        get_f(r, m, w, "max_time_ratio", 0.0, 0.0, 1.0, &s->max_time_ratio) < 0 ||
        get_int(r, m, w, "freq_masks", 2, 0, 64, &nf) < 0 ||
        get_int(r, m, w, "max_freq", 27, 0, 80, &mf) < 0 ||
        avsr_yaml_get_bool(r->y, m, w, "fill_mean", false, false, &fill, r->err) < 0)
        return -1;
    s->n_time_masks = (int)nt;
    s->max_time = (int)mt;
    s->n_freq_masks = (int)nf;
    s->max_freq = (int)mf;
    s->fill_mean = fill;
    return avsr_yaml_check_unused(r->y, m, w, r->err);
}

static int parse_audio(rd *r, avsr_ynode *a, avsr_model_cfg *c)
{
    const char *w = "model.audio";
    static const char *const feats[] = {"wave", "logmel80", "fbank104", NULL};
    const char *f;
    if (avsr_yaml_get_str(r->y, a, w, "features", false, "wave", feats, &f, r->err) < 0)
        return -1;
    if (!strcmp(f, "wave")) {
        c->audio = AVSR_AUDIO_WAVE;
        int64_t width, pool;
        if (get_int(r, a, w, "width", 64, 1, 1024, &width) < 0 ||
            get_depth(r, a, w, c->wave.depth) < 0 || get_act(r, a, w, &c->wave.act) < 0 ||
            get_int(r, a, w, "pool", 20, 1, 1000, &pool) < 0)
            return -1;
        c->wave.width = (int)width;
        c->wave.pool = (int)pool;
        if (not_here(r, a, w, "subsample_channels", "only for features: logmel80") < 0 ||
            not_here(r, a, w, "spec_augment", "only for features: logmel80") < 0 ||
            not_here(r, a, w, "pad_frames", "only for features: logmel80") < 0)
            return -1;
    } else {
        static const char *const wave_keys[] = {"width", "depth", "act", "pool", NULL};
        for (int i = 0; wave_keys[i]; i++)
            if (not_here(r, a, w, wave_keys[i], "only for features: wave") < 0)
                return -1;
        if (!strcmp(f, "logmel80")) {
            c->audio = AVSR_AUDIO_LOGMEL80;
            int64_t ch;
            avsr_ynode *pn = avsr_ynode_get(a, "pad_frames");
            if (get_int(r, a, w, "subsample_channels", 0, 0, 4096, &ch) < 0 ||
                parse_specaug(r, a, &c->specaug) < 0 ||
                get_int(r, a, w, "pad_frames", 0, 0, 1000000, &c->mel_pad_frames) < 0)
                return -1;
            if (c->mel_pad_frames > 0 && c->mel_pad_frames < 7)
                return avsr_yaml_error(r->y, pn, r->err, "%s.pad_frames: %lld, expected 0 (off) "
                                       "or at least 7 (the subsampling's minimum)", w,
                                       (long long)c->mel_pad_frames);
            c->subsample_channels = (int)ch;
        } else {
            c->audio = AVSR_AUDIO_FBANK104;
            if (not_here(r, a, w, "subsample_channels", "only for features: logmel80") < 0 ||
                not_here(r, a, w, "spec_augment", "only for features: logmel80") < 0 ||
                not_here(r, a, w, "pad_frames", "only for features: logmel80") < 0)
                return -1;
        }
    }
    return avsr_yaml_check_unused(r->y, a, w, r->err);
}

static int parse_fusion(rd *r, avsr_ynode *f, avsr_model_cfg *c)
{
    const char *w = "model.fusion";
    static const char *const types[] = {"concat_mlp", "add", "gated", NULL};
    static const char *const pos[] = {"late", "early", NULL};
    static const char *const norms[] = {"batchnorm", "layernorm", "none", NULL};
    const char *t, *p;
    if (avsr_yaml_get_str(r->y, f, w, "type", false, "concat_mlp", types, &t, r->err) < 0 ||
        avsr_yaml_get_str(r->y, f, w, "position", false, "late", pos, &p, r->err) < 0)
        return -1;
    c->fusion = !strcmp(t, "concat_mlp") ? AVSR_FUSION_CONCAT_MLP
                : !strcmp(t, "add")      ? AVSR_FUSION_ADD
                                         : AVSR_FUSION_GATED;
    c->fusion_pos = !strcmp(p, "late") ? AVSR_FUSION_LATE : AVSR_FUSION_EARLY;
    if (c->fusion == AVSR_FUSION_CONCAT_MLP) {
        const char *n;
        if (get_int(r, f, w, "hidden", 8192, 1, 1 << 20, &c->fusion_hidden) < 0 ||
            avsr_yaml_get_str(r->y, f, w, "norm", false, "batchnorm", norms, &n, r->err) < 0)
            return -1;
        c->fusion_norm = !strcmp(n, "batchnorm") ? AVSR_FUSION_NORM_BATCH
                         : !strcmp(n, "layernorm") ? AVSR_FUSION_NORM_LAYER
                                                   : AVSR_FUSION_NORM_NONE;
        if (c->fusion_pos == AVSR_FUSION_EARLY) {
            if (get_int(r, f, w, "dim", 0, 0, 1 << 16, &c->fusion_dim) < 0)
                return -1;
        } else if (not_here(r, f, w, "dim",
                            "only for position: early (late fusion outputs the encoder dim)") < 0) {
            return -1;
        }
    } else {
        static const char *const mlp_keys[] = {"hidden", "norm", "dim", NULL};
        for (int i = 0; mlp_keys[i]; i++)
            if (not_here(r, f, w, mlp_keys[i], "only for type: concat_mlp") < 0)
                return -1;
    }
    if (get_f(r, f, w, "modality_dropout", 0.0, 0.0, 1.0, &c->p_modality) < 0 ||
        get_f(r, f, w, "audio_share", 0.5, 0.0, 1.0, &c->p_audio) < 0)
        return -1;
    return avsr_yaml_check_unused(r->y, f, w, r->err);
}

/* a list of n integers in [lo, hi] into out (absent: keep out) */
static int get_ints(rd *r, avsr_ynode *map, const char *what, const char *key, int n,
                    int64_t lo, int64_t hi, int *out)
{
    avsr_ynode *s;
    char path[160];
    snprintf(path, sizeof path, "%s.%s", what, key);
    if (avsr_yaml_get_seq(r->y, map, what, key, false, &s, r->err) < 0)
        return -1;
    if (!s)
        return 0;
    if (avsr_ynode_len(s) != n)
        return avsr_yaml_error(r->y, s, r->err, "%s: expected a list of %d integers, got %d",
                               path, n, avsr_ynode_len(s));
    for (int i = 0; i < n; i++) {
        int64_t v;
        if (avsr_ynode_to_int(r->y, avsr_ynode_item(s, i), path, lo, hi, &v, r->err) < 0)
            return -1;
        out[i] = (int)v;
    }
    return 0;
}

/* ASR2AVSR fusion module (models/av_fusion_module.h); defaults: the paper */
static int parse_fusion_module(rd *r, avsr_ynode *f, avsr_avfm_cfg *c)
{
    const char *w = "model.fusion_module";
    avsr_ynode *an, *vn, *xn;
    avsr_avfm_cfg_default(c);
    c->video_scale = 1.0f; /* the loader's video (docs/models/recipe-model.md) */
    if (avsr_yaml_get_map(r->y, f, w, "audio_cnn", false, &an, r->err) < 0 ||
        avsr_yaml_get_map(r->y, f, w, "video_cnn", false, &vn, r->err) < 0 ||
        avsr_yaml_get_map(r->y, f, w, "cross_attention", false, &xn, r->err) < 0)
        return -1;
    int64_t v;
    const char *wa = "model.fusion_module.audio_cnn";
    if (an) {
        if (get_int(r, an, wa, "channels", c->spec_channels, 1, 4096, &v) < 0)
            return -1;
        c->spec_channels = (int)v;
        if (get_int(r, an, wa, "blocks", c->spec_layers, 2, 64, &v) < 0)
            return -1;
        c->spec_layers = (int)v;
        if (avsr_yaml_check_unused(r->y, an, wa, r->err) < 0)
            return -1;
    }
    const char *wv = "model.fusion_module.video_cnn";
    if (vn) {
        if (get_int(r, vn, wv, "stem", c->lip_stem, 1, 4096, &v) < 0)
            return -1;
        c->lip_stem = (int)v;
        if (get_int(r, vn, wv, "inner", c->lip_inner, 1, 4096, &v) < 0)
            return -1;
        c->lip_inner = (int)v;
        if (get_ints(r, vn, wv, "channels", 4, 1, 4096, c->lip_channels) < 0)
            return -1;
        avsr_ynode *bl;
        char path[96];
        snprintf(path, sizeof path, "%s.blocks", wv);
        if (avsr_yaml_get_seq(r->y, vn, wv, "blocks", false, &bl, r->err) < 0)
            return -1;
        if (bl && avsr_ynode_len(bl) != 4)
            return avsr_yaml_error(r->y, bl, r->err, "%s: expected 4 stages of [2D blocks, 3D "
                                   "blocks], got %d", path, avsr_ynode_len(bl));
        for (int k = 0; bl && k < 4; k++) {
            avsr_ynode *it = avsr_ynode_item(bl, k);
            if (avsr_ynode_kind_of(it) != AVSR_Y_SEQ || avsr_ynode_len(it) != 2)
                return avsr_yaml_error(r->y, it, r->err, "%s[%d]: expected [2D blocks, 3D "
                                       "blocks], e.g. [2, 1]", path, k);
            int64_t n2, n3;
            if (avsr_ynode_to_int(r->y, avsr_ynode_item(it, 0), path, 1, 16, &n2, r->err) < 0 ||
                avsr_ynode_to_int(r->y, avsr_ynode_item(it, 1), path, 0, 16, &n3, r->err) < 0)
                return -1;
            c->lip_blocks[k][0] = (int)n2;
            c->lip_blocks[k][1] = (int)n3;
        }
        /* a list of lists is a container to the getters: record it by hand,
         * so the model file's configuration rebuilds the same trunk */
        char js[128];
        snprintf(js, sizeof js, "[[%d, %d], [%d, %d], [%d, %d], [%d, %d]]", c->lip_blocks[0][0],
                 c->lip_blocks[0][1], c->lip_blocks[1][0], c->lip_blocks[1][1],
                 c->lip_blocks[2][0], c->lip_blocks[2][1], c->lip_blocks[3][0],
                 c->lip_blocks[3][1]);
        if (avsr_yaml_record_value(r->y, wv, "blocks", AVSR_YV_LIST, js, bl) < 0)
            return avsr_error_set(r->err, AVSR_ERR_NOMEM, "%s: out of memory", path);
        if (avsr_yaml_check_unused(r->y, vn, wv, r->err) < 0)
            return -1;
    }
    const char *wx = "model.fusion_module.cross_attention";
    if (xn) {
        avsr_ynode *wn = avsr_ynode_get(xn, "window");
        if (get_int(r, xn, wx, "layers", c->layers, 0, 64, &v) < 0)
            return -1;
        c->layers = (int)v;
        if (get_int(r, xn, wx, "heads", c->heads, 1, 64, &v) < 0)
            return -1;
        c->heads = (int)v;
        if (get_int(r, xn, wx, "dim", c->d_model, 1, 4096, &v) < 0)
            return -1;
        c->d_model = (int)v;
        if (get_int(r, xn, wx, "window", c->window, 4, 1 << 20, &v) < 0)
            return -1;
        if (v % 4 != 0)
            return avsr_yaml_error(r->y, wn, r->err, "%s.window: %lld is not a multiple of 4 "
                                   "(windows overlap by half and are stitched by quarters)",
                                   wx, (long long)v);
        c->window = (int)v;
        if (avsr_yaml_get_bool(r->y, xn, wx, "query_residual", false, false, &c->query_residual,
                               r->err) < 0 ||
            avsr_yaml_check_unused(r->y, xn, wx, r->err) < 0)
            return -1;
    }
    if (get_f(r, f, w, "video_scale", 1.0, 1e-6, 1e3, &c->video_scale) < 0 ||
        avsr_yaml_get_bool(r->y, f, w, "mel_skip", false, false, &c->mel_skip, r->err) < 0)
        return -1;
    return avsr_yaml_check_unused(r->y, f, w, r->err);
}

static int parse_encoder(rd *r, avsr_ynode *e, avsr_model_cfg *c)
{
    const char *w = "model.encoder";
    static const char *const types[] = {"conformer", "transformer", NULL};
    static const char *const acts[] = {"relu", "swish", NULL};
    const char *t = "conformer", *act = "relu";
    int64_t layers = 12, dim = 768, heads = 12, ffn = 3072, kernel = 31;
    avsr_conformer_cfg *ec = &c->encoder;
    if (e && avsr_yaml_get_str(r->y, e, w, "type", false, "conformer", types, &t, r->err) < 0)
        return -1;
    c->encoder_kind = !strcmp(t, "conformer") ? AVSR_ENCODER_CONFORMER : AVSR_ENCODER_TRANSFORMER;
    if (get_int(r, e, w, "layers", 12, 0, 120, &layers) < 0 ||
        get_int(r, e, w, "dim", 768, 1, 16384, &dim) < 0 ||
        get_int(r, e, w, "heads", 12, 1, 256, &heads) < 0 ||
        get_int(r, e, w, "ffn", 3072, 1, 1 << 18, &ffn) < 0)
        return -1;
    if (dim % heads != 0)
        return avsr_yaml_error(r->y, avsr_ynode_get(e, "heads") ? avsr_ynode_get(e, "heads") : e,
                               r->err, "%s: dim %lld is not a multiple of heads %lld", w,
                               (long long)dim, (long long)heads);
    if (c->encoder_kind == AVSR_ENCODER_CONFORMER)
        avsr_conformer_cfg_default(ec, 0, dim, (int)heads, ffn, (int)layers);
    else
        avsr_transformer_cfg_default(ec, 0, dim, (int)heads, ffn, (int)layers);
    bool bn_mask = true, zero_pad = false;
    if (c->encoder_kind == AVSR_ENCODER_CONFORMER) {
        avsr_ynode *kn = avsr_ynode_get(e, "conv_kernel");
        if (get_int(r, e, w, "conv_kernel", 31, 1, 255, &kernel) < 0)
            return -1;
        if (kernel % 2 == 0)
            return avsr_yaml_error(r->y, kn, r->err, "%s.conv_kernel: %lld is even, expected an "
                                   "odd size", w, (long long)kernel);
        if (avsr_yaml_get_bool(r->y, e, w, "bn_mask", false, true, &bn_mask, r->err) < 0 ||
            avsr_yaml_get_bool(r->y, e, w, "conv_zero_pad", false, false, &zero_pad, r->err) < 0)
            return -1;
    } else {
        static const char *const conf_keys[] = {"conv_kernel", "bn_mask", "conv_zero_pad", NULL};
        for (int i = 0; conf_keys[i]; i++)
            if (not_here(r, e, w, conf_keys[i], "only for type: conformer") < 0)
                return -1;
    }
    ec->kernel = (int)kernel;
    ec->bn_mask = bn_mask;
    ec->conv_zero_pad = zero_pad;
    if (get_f(r, e, w, "dropout", 0.1, 0.0, 0.99, &ec->dropout) < 0 ||
        get_f(r, e, w, "pos_dropout", ec->dropout, 0.0, 0.99, &ec->pos_dropout) < 0 ||
        get_f(r, e, w, "attn_dropout", ec->dropout, 0.0, 0.99, &ec->attn_dropout) < 0)
        return -1;
    if (e && avsr_yaml_get_str(r->y, e, w, "ffn_act", false, "relu", acts, &act, r->err) < 0)
        return -1;
    ec->ffn_act = !strcmp(act, "relu") ? AVSR_ACT_RELU : AVSR_ACT_SILU;
    return e ? avsr_yaml_check_unused(r->y, e, w, r->err) : 0;
}

static int parse_decoder(rd *r, avsr_ynode *d, avsr_model_cfg *c)
{
    const char *w = "model.decoder";
    const avsr_conformer_cfg *ec = &c->encoder;
    int64_t layers, dim, heads, ffn;
    if (get_int(r, d, w, "layers", 6, 1, 120, &layers) < 0 ||
        get_int(r, d, w, "dim", ec->d_model, 1, 16384, &dim) < 0 ||
        get_int(r, d, w, "heads", ec->heads, 1, 256, &heads) < 0 ||
        get_int(r, d, w, "ffn", ec->ffn, 1, 1 << 18, &ffn) < 0)
        return -1;
    if (dim % heads != 0) {
        avsr_ynode *at = avsr_ynode_get(d, "heads");
        return avsr_yaml_error(r->y, at ? at : d, r->err,
                               "%s: dim %lld is not a multiple of heads %lld", w, (long long)dim,
                               (long long)heads);
    }
    avsr_decoder_cfg *dc = &c->decoder;
    avsr_decoder_cfg_default(dc, c->vocab, dim, (int)heads, ffn, (int)layers);
    float ad;
    if (get_f(r, d, w, "dropout", 0.1, 0.0, 0.99, &dc->dropout) < 0 ||
        get_f(r, d, w, "pos_dropout", dc->dropout, 0.0, 0.99, &dc->pos_dropout) < 0 ||
        get_f(r, d, w, "attn_dropout", dc->dropout, 0.0, 0.99, &ad) < 0)
        return -1;
    dc->self_attn_dropout = dc->src_attn_dropout = ad;
    return avsr_yaml_check_unused(r->y, d, w, r->err);
}

int avsr_model_cfg_parse(const avsr_yaml *y, avsr_ynode *model, int vocab_size,
                         avsr_model_cfg *c, avsr_error *err)
{
    rd r = {y, err};
    const char *w = "model";
    if (!model || avsr_ynode_kind_of(model) != AVSR_Y_MAP)
        return avsr_yaml_error(y, model, err, "model: expected a mapping");
    if (vocab_size < 3)
        return avsr_yaml_error(y, model, err, "model: vocabulary size %d, expected at least 3",
                               vocab_size);
    avsr_model_cfg_default(c, vocab_size);
    avsr_ynode *vn, *an, *fn, *dn, *en, *mn;
    bool has_v, has_a, has_f, has_d, has_m;
    if (section(&r, model, w, "video", &vn, &has_v) < 0 ||
        section(&r, model, w, "audio", &an, &has_a) < 0)
        return -1;
    c->use_video = has_v;
    c->audio = AVSR_AUDIO_NONE;
    if (!has_v && !has_a)
        return avsr_yaml_error(y, model, err,
                               "model: needs a video or an audio section (or both)");
    if ((has_v && parse_video(&r, vn, c) < 0) || (has_a && parse_audio(&r, an, c) < 0))
        return -1;
    if (section(&r, model, w, "fusion_module", &mn, &has_m) < 0)
        return -1;
    if (has_m) {
        if (has_v)
            return avsr_yaml_error(y, mn, err, "model.fusion_module: given together with "
                                   "model.video: the fusion module takes the video itself "
                                   "(remove the video section)");
        if (!has_a || c->audio != AVSR_AUDIO_LOGMEL80)
            return avsr_yaml_error(y, mn, err, "model.fusion_module: needs an audio section with "
                                   "features: logmel80 (it enhances the log-mel)%s%s",
                                   has_a ? ", got " : "",
                                   !has_a ? ""
                                   : c->audio == AVSR_AUDIO_WAVE ? "wave" : "fbank104");
        c->use_fusion_module = true;
        if (parse_fusion_module(&r, mn, &c->fusion_module) < 0)
            return -1;
    }
    if (avsr_yaml_get_map(y, model, w, "encoder", false, &en, err) < 0 ||
        parse_encoder(&r, en, c) < 0)
        return -1;
    if (section(&r, model, w, "fusion", &fn, &has_f) < 0)
        return -1;
    if (has_f && !(has_v && has_a))
        return avsr_yaml_error(y, fn, err, "model.fusion: given, but the model has only %s "
                               "(fusion needs video and audio)", has_v ? "video" : "audio");
    if (has_f && parse_fusion(&r, fn, c) < 0)
        return -1;
    /* early fusion of frontends with add/gated: equal sizes */
    if (has_v && has_a) {
        int64_t d = c->encoder.d_model;
        int64_t dv = c->fusion_pos == AVSR_FUSION_LATE ? d : 8 * (int64_t)c->video.width;
        int64_t da = c->fusion_pos == AVSR_FUSION_LATE ? d
                     : c->audio == AVSR_AUDIO_WAVE     ? 8 * (int64_t)c->wave.width
                                                       : d;
        if (c->fusion != AVSR_FUSION_CONCAT_MLP && dv != da)
            return avsr_yaml_error(y, avsr_ynode_get(fn, "type"), err,
                                   "model.fusion.type: %s needs equal feature sizes, got video "
                                   "%lld (8 x video.width) and audio %lld",
                                   c->fusion == AVSR_FUSION_ADD ? "add" : "gated", (long long)dv,
                                   (long long)da);
    }
    double ctcw, ls, cdrop;
    avsr_ynode *cw = avsr_ynode_get(model, "ctc_weight");
    if (avsr_yaml_get_double(y, model, w, "ctc_weight", false, 0.1, 0.0, 1.0, &ctcw, err) < 0 ||
        avsr_yaml_get_double(y, model, w, "ctc_dropout", false, c->encoder.dropout, 0.0, 0.99,
                             &cdrop, err) < 0)
        return -1;
    c->ctc_weight = (float)ctcw;
    c->ctc_dropout = (float)cdrop;
    if (section(&r, model, w, "decoder", &dn, &has_d) < 0)
        return -1;
    avsr_ynode *dkey = avsr_ynode_get(model, "decoder");
    bool explicit_none = dkey && !has_d && !avsr_ynode_is_null(dkey);
    c->use_decoder = ctcw < 1.0;
    if (has_d && ctcw >= 1.0)
        return avsr_yaml_error(y, dn, err, "model.decoder: given, but ctc_weight is 1 (CTC only); "
                               "remove the decoder or lower ctc_weight");
    if (explicit_none && ctcw < 1.0)
        return avsr_yaml_error(y, cw ? cw : dkey, err, "model.ctc_weight: %g < 1 needs the "
                               "attention decoder, but decoder is none", ctcw);
    if (c->use_decoder) {
        if (parse_decoder(&r, dn, c) < 0)
            return -1;
        if (avsr_yaml_get_double(y, model, w, "label_smoothing", false, 0.1, 0.0, 0.99, &ls,
                                 err) < 0)
            return -1;
        c->label_smoothing = (float)ls;
    } else {
        c->label_smoothing = 0.0f;
        if (not_here(&r, model, w, "label_smoothing",
                     "only with an attention decoder (ctc_weight < 1)") < 0)
            return -1;
    }
    return avsr_yaml_check_unused(y, model, w, err);
}

int avsr_model_build(const avsr_yaml *y, avsr_ynode *model_section, int vocab_size,
                     avsr_model **out, avsr_params *p, avsr_error *err)
{
    avsr_model_cfg cfg;
    *out = NULL;
    if (avsr_model_cfg_parse(y, model_section, vocab_size, &cfg, err) < 0)
        return -1;
    if (avsr_model_create(&cfg, p, out, err) < 0) {
        avsr_error_prefix(err, "%s: ", avsr_yaml_name(y));
        return -1;
    }
    return 0;
}
