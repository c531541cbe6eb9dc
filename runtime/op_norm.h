/* op_norm: (being written) */
#ifndef AVSR_OP_NORM_H
#define AVSR_OP_NORM_H
#include "ctx.h"
#endif
