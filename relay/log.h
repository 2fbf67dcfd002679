/*
 * log.h - the relay's log: one line per event on stderr, with a level.
 * Contract: callers never pass ciphertext, keys or other secrets; ids are
 * logged as short hex prefixes (rlog_hex).
 */
#ifndef VALISE_RELAY_LOG_H
#define VALISE_RELAY_LOG_H

#include <stddef.h>
#include <stdint.h>

enum rlog_level { RLOG_ERROR = 0, RLOG_WARN = 1, RLOG_INFO = 2, RLOG_DEBUG = 3 };

void rlog_set_level(int level);
int rlog_enabled(int level);
/* "error", "warn", "info", "debug" -> level; -1 if unknown. */
int rlog_parse_level(const char *s);
void rlog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The first 4 bytes of an id as 8 hex digits, into out[9]. */
const char *rlog_hex(char out[static 9], const uint8_t *id);

#endif
