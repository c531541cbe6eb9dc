/* dtype: element type table and half-precision conversions. */
#include "dtype.h"

#include <stdint.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtype_table[AVSR_DTYPE_COUNT] = {
    [AVSR_F32] = {"F32", 4},   [AVSR_F16] = {"F16", 2}, [AVSR_BF16] = {"BF16", 2},
    [AVSR_F64] = {"F64", 8},   [AVSR_I8] = {"I8", 1},   [AVSR_I16] = {"I16", 2},
    [AVSR_I32] = {"I32", 4},   [AVSR_I64] = {"I64", 8}, [AVSR_U8] = {"U8", 1},
    [AVSR_BOOL] = {"BOOL", 1},
};

size_t avsr_dtype_size(avsr_dtype t)
{
    return (unsigned)t < AVSR_DTYPE_COUNT ? dtype_table[t].size : 0;
}

const char *avsr_dtype_name(avsr_dtype t)
{
    return (unsigned)t < AVSR_DTYPE_COUNT ? dtype_table[t].name : "?";
}

int avsr_dtype_parse(const char *name, avsr_dtype *out)
{
    for (int i = 0; i < AVSR_DTYPE_COUNT; i++) {
        if (strcmp(name, dtype_table[i].name) == 0) {
            *out = (avsr_dtype)i;
            return 0;
        }
    }
    return -1;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float avsr_bf16_to_f32(unsigned short h)
{
    return bits_f32((uint32_t)h << 16);
}

unsigned short avsr_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it quiet */
        return (unsigned short)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

float avsr_f16_to_f32(unsigned short h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0) {
        if (man == 0)
            return bits_f32(sign);
        /* subnormal */
        float v = (float)man / 1024.0f / 16384.0f;
        return sign ? -v : v;
    }
    if (exp == 31)
        return bits_f32(sign | 0x7f800000u | (man << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

unsigned short avsr_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    int32_t exp = (int32_t)((u >> 23) & 0xff) - 127 + 15;
    uint32_t man = u & 0x7fffffu;
    if (((u >> 23) & 0xff) == 0xff) /* inf / nan */
        return (unsigned short)(sign | 0x7c00u | (man ? 0x200u : 0));
    if (exp >= 31)
        return (unsigned short)(sign | 0x7c00u);
    if (exp <= 0) {
        if (exp < -10)
            return (unsigned short)sign;
        man |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (unsigned short)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1)))
        half++;
    return (unsigned short)half;
}
