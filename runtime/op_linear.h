/* op_linear: (being written) */
#ifndef AVSR_OP_LINEAR_H
#define AVSR_OP_LINEAR_H
#include "ctx.h"
#endif
