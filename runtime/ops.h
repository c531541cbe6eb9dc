/* ops: every op of the runtime, one header per family. Each op takes a
 * context and tensors, returns a new tensor (NULL on failure, with the
 * context's sticky error set) and, in grad mode, records its backward. */
#ifndef AVSR_OPS_H
#define AVSR_OPS_H

#include "op_basic.h"
#include "op_linear.h"
#include "op_conv.h"
#include "op_norm.h"
#include "op_act.h"
#include "op_shape.h"
#include "op_loss.h"
#include "op_features.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif
