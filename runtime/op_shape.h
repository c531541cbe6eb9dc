/* op_shape: (being written) */
#ifndef AVSR_OP_SHAPE_H
#define AVSR_OP_SHAPE_H
#include "ctx.h"
#endif
