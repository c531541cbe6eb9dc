/* dtype: element types known to the tensor and file-format code.
 * Compute is f32 today; the others are carried through safetensors files,
 * datasets (u8 video, i16 audio) and integer buffers (i64 counters). */
#ifndef AVSR_DTYPE_H
#define AVSR_DTYPE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum avsr_dtype {
    AVSR_F32 = 0,
    AVSR_F16,
    AVSR_BF16,
    AVSR_F64,
    AVSR_I8,
    AVSR_I16,
    AVSR_I32,
    AVSR_I64,
    AVSR_U8,
    AVSR_BOOL,
    AVSR_DTYPE_COUNT
} avsr_dtype;

/* Bytes per element. */
size_t avsr_dtype_size(avsr_dtype t);
/* safetensors name ("F32", "BF16", "I64", ...). */
const char *avsr_dtype_name(avsr_dtype t);
/* Parse a safetensors name; returns 0 and sets *out, or -1 if unknown. */
int avsr_dtype_parse(const char *name, avsr_dtype *out);

/* bf16/f16 <-> f32 conversions (round to nearest even). */
float avsr_bf16_to_f32(unsigned short h);
unsigned short avsr_f32_to_bf16(float f);
float avsr_f16_to_f32(unsigned short h);
unsigned short avsr_f32_to_f16(float f);

#ifdef __cplusplus
}
#endif

#endif
