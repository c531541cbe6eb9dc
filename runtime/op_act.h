/* op_act: (being written) */
#ifndef AVSR_OP_ACT_H
#define AVSR_OP_ACT_H
#include "ctx.h"
#endif
