/* op_conv: (being written) */
#ifndef AVSR_OP_CONV_H
#define AVSR_OP_CONV_H
#include "ctx.h"
#endif
