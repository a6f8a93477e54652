/* Layout of the pub/sub segment (interproc/_pubsub/__init__.py has the
 * picture).  Python reads these numbers from _native, so they are written
 * once, here. */
#ifndef INTERPROC_PUBSUB_H
#define INTERPROC_PUBSUB_H

#include "native.h"

#define PS_OFF_PUBLISHED 64    /* i64; low 32 bits: subscribers' futex word */
#define PS_OFF_SUB_WAITERS 72  /* i64 */
#define PS_OFF_CLOSED 80       /* u32 */
#define PS_OFF_PUB_PID 88      /* u32 pid, pad, u64 start */
#define PS_OFF_HWM 104         /* u32 */
#define PS_OFF_SPACE 128       /* u32: the publisher's futex word */
#define PS_OFF_PUB_WAITING 136 /* i64 */
#define PS_OFF_GEN 144         /* i64 */
#define PS_OFF_PUB_BELL 152    /* u32 fd, u32 fdwait, u64 inode: the publisher's doorbell */
#define PS_OFF_TABLE 192
#define PS_ENTRY 64
#define PS_E_WORD 0
#define PS_E_PID 8
#define PS_E_POLICY 12
#define PS_E_START 16
#define PS_E_READ 24
#define PS_E_DROPPED 32
#define PS_E_RECEIVED 40
#define PS_E_BELL 48           /* u32 fd, u32 fdwait, u64 inode: the subscriber's doorbell */
#define PS_SLOT_HEADER 64
#define PS_WRITING (-1)
#define PS_FREE 0
#define PS_CLAIMING 1
#define PS_ACTIVE 2
#define PS_BLOCK 0
#define PS_DROP_OLDEST 1

/* A doorbell slot in the segment: where a waiter's pipe is, and whether it
 * waits on it right now (one shot: the ringer clears it). */
typedef struct {
    uint32_t fd, fdwait;
    uint64_t ino;
} ps_bell;

/* bell.c: open another process's doorbell pipe for writing through
 * /proc/PID/fd/N; -1 unless it is a FIFO with that inode. */
int ip_bell_open(uint32_t pid, uint32_t fd, uint64_t ino);
void ip_bell_write(int fd);

int ip_pubsub_init(PyObject *module);

#endif
