/* op_loss: (being written) */
#ifndef AVSR_OP_LOSS_H
#define AVSR_OP_LOSS_H
#include "ctx.h"
#endif
