/* lt_redis.h - hiredis (synchronous) helpers of the load-test tool: URL,
 * connection, checked commands, stream reads and a group's lag.
 *
 * URL: redis://[[user]:password@]HOST[:PORT][/DB] (port 6379, db 0), the
 * form the worker takes (docs/redis.md); no TLS, no Unix sockets here.
 */
#ifndef LT_REDIS_H
#define LT_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

/* Connects (5 s timeout; commands time out after 30 s), AUTHs, SELECTs.
 * NULL + err: "cannot connect to Redis at HOST:PORT: Connection refused". */
redisContext *ltr_connect(const char *url, char *err, size_t errlen);

/* Runs one command given as argv (binary-safe with lens; lens NULL: C
 * strings). Returns the reply, or NULL + err for a connection error or an
 * error reply (the message quotes the command's name and Redis's text). */
redisReply *ltr_cmd(redisContext *c, int argc, const char **argv, const size_t *lens, char *err,
                    size_t errlen);

/* The group's state from XINFO GROUPS: lag (entries not yet delivered to
 * the group; -1 when Redis reports it as unknown) and pending (delivered
 * and not acknowledged). 0, 1 when the group does not exist (yet), or -1 +
 * err. */
int ltr_group_lag(redisContext *c, const char *stream, const char *group, int64_t *lag,
                  int64_t *pending, char *err, size_t errlen);

/* The ms part of an entry id "MS-SEQ" (-1 if malformed). */
int64_t ltr_id_ms(const char *id, size_t len);

/* The value of field name in a stream entry's flat [f1, v1, f2, v2, ...]
 * array reply, or NULL. */
const redisReply *ltr_field(const redisReply *fields, const char *name);

#endif
