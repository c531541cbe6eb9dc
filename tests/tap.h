/* tap: Test Anything Protocol output for the test programs.
 * Each check prints "ok N - what" or "not ok N - what"; tap_done() prints
 * the plan and returns the exit status. Diagnostics go to "# " lines. */
#ifndef AVSR_TAP_H
#define AVSR_TAP_H

#include <stdbool.h>

bool tap_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tap_skip(const char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Skip the whole program ("1..0 # SKIP why") and exit(0). */
void tap_skip_all(const char *why) __attribute__((noreturn));
/* Stop with a bail-out line (for setup failures) and exit(1). */
void tap_bail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
int tap_done(void);
int tap_failed(void);

#endif
