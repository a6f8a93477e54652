/* C baselines for the shm:// channel benchmarks (two processes via fork).
 *
 *   shm_baselines spin  N             64 B ping-pong, both sides spinning
 *   shm_baselines futex N             64 B ping-pong, both sides sleeping on a futex
 *   shm_baselines ring  SIZE N RING   one-way SIZE-byte messages through a byte
 *                                     ring of RING bytes, memcpy in and out, spinning
 *
 * Prints one JSON result dict per line, like interproc._bench.
 * PIN_CPUS=a,b in the environment pins the parent to CPU a and the child to b.
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void pin(int which)
{
    /* Every spin loop is bounded: the forked child dies with the parent, and
     * the parent (main) runs under alarm(LIMIT_S), so a stalled side ends the
     * run instead of spinning forever. */
    if (which == 1) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1)
            _exit(1);
    }
    const char *env = getenv("PIN_CPUS");
    int cpu[2];
    if (!env || sscanf(env, "%d,%d", &cpu[0], &cpu[1]) != 2)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu[which], &set);
    sched_setaffinity(0, sizeof set, &set);
}

static int cmp(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

struct line { uint32_t seq; char data[60]; } __attribute__((aligned(64)));
struct pp { struct line ping, pong; };

static void futex_wait(uint32_t *w, uint32_t v)
{
    syscall(SYS_futex, w, FUTEX_WAIT, v, NULL, NULL, 0);
}

static void futex_wake(uint32_t *w)
{
    syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static void wait_for(uint32_t *w, uint32_t want, int use_futex)
{
    uint32_t v;
    while ((v = __atomic_load_n(w, __ATOMIC_ACQUIRE)) != want) {
        if (use_futex)
            futex_wait(w, v);
        else
            relax();
    }
}

static void post(uint32_t *w, uint32_t v, int use_futex)
{
    __atomic_store_n(w, v, __ATOMIC_RELEASE);
    if (use_futex)
        futex_wake(w);
}

static int pingpong(long n, int use_futex)
{
    struct pp *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    long warm = n / 10;
    pid_t pid = fork();
    pin(pid == 0);
    if (pid == 0) {
        char buf[64];
        for (long i = 1; i <= n + warm; i++) {
            wait_for(&s->ping.seq, (uint32_t)i, use_futex);
            memcpy(buf, s->ping.data, 60);
            memcpy(s->pong.data, buf, 60);
            post(&s->pong.seq, (uint32_t)i, use_futex);
        }
        _exit(0);
    }
    long long *t = malloc(sizeof(long long) * (n + warm));
    char msg[64] = {0}, back[64];
    for (long i = 1; i <= n + warm; i++) {
        long long t0 = now_ns();
        memcpy(s->ping.data, msg, 60);
        post(&s->ping.seq, (uint32_t)i, use_futex);
        wait_for(&s->pong.seq, (uint32_t)i, use_futex);
        memcpy(back, s->pong.data, 60);
        t[i - 1] = now_ns() - t0;
    }
    waitpid(pid, NULL, 0);
    qsort(t + warm, n, sizeof(long long), cmp);
    const char *name = use_futex ? "C futex ping-pong" : "C spin ping-pong";
    printf("{\"transport\": \"%s\", \"metric\": \"rtt_64B_median\", \"value\": %.4f, \"unit\": \"us\"}\n",
           name, t[warm + n / 2] / 1000.0);
    printf("{\"transport\": \"%s\", \"metric\": \"rtt_64B_p99\", \"value\": %.4f, \"unit\": \"us\"}\n",
           name, t[warm + n * 99 / 100] / 1000.0);
    return 0;
}

struct ringhdr {
    uint64_t head __attribute__((aligned(64)));
    uint64_t tail __attribute__((aligned(64)));
};

static int ring(size_t size, long n, size_t cap)
{
    if (cap % size) {
        fprintf(stderr, "ring size must be a multiple of the message size\n");
        return 2;
    }
    char *mem = mmap(NULL, 4096 + cap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct ringhdr *h = (struct ringhdr *)mem;
    char *data = mem + 4096;
    /* Page-aligned private buffers: malloc's 16-byte offset puts the source
     * and destination of the copies a few bytes apart modulo 4 KiB, and the
     * resulting 4K-aliasing stalls made this baseline 3-10x slower than the
     * same copies elsewhere. */
    char *src = aligned_alloc(4096, size), *dst = aligned_alloc(4096, size);
    memset(src, 1, size);
    memset(dst, 0, size);
    memset(data, 0, cap); /* fault the pages in, as the Python side's rings are */
    pid_t pid = fork();
    pin(pid == 0);
    if (pid == 0) {
        uint64_t head = 0;
        for (long i = 0; i < n; i++) {
            while (head - __atomic_load_n(&h->tail, __ATOMIC_ACQUIRE) > cap - size)
                relax();
            memcpy(data + head % cap, src, size);
            head += size;
            __atomic_store_n(&h->head, head, __ATOMIC_RELEASE);
        }
        _exit(0);
    }
    uint64_t tail = 0;
    long long t0 = 0;
    for (long i = 0; i < n; i++) {
        while (__atomic_load_n(&h->head, __ATOMIC_ACQUIRE) == tail)
            relax();
        if (i == 0)
            t0 = now_ns();
        memcpy(dst, data + tail % cap, size);
        tail += size;
        __atomic_store_n(&h->tail, tail, __ATOMIC_RELEASE);
    }
    double secs = (now_ns() - t0) / 1e9;
    waitpid(pid, NULL, 0);
    /* the first message only starts the clock */
    printf("{\"transport\": \"C shm ring (memcpy in/out)\", \"metric\": \"oneway_%zuB_throughput\", "
           "\"value\": %.4f, \"unit\": \"MiB/s\"}\n", size, (double)(n - 1) * size / secs / (1 << 20));
    printf("{\"transport\": \"C shm ring (memcpy in/out)\", \"metric\": \"oneway_%zuB_msgs\", "
           "\"value\": %.4f, \"unit\": \"msg/s\"}\n", size, (n - 1) / secs);
    return 0;
}

int main(int argc, char **argv)
{
    const char *limit = getenv("LIMIT_S");
    alarm(limit ? (unsigned)atoi(limit) : 120);
    if (argc >= 3 && strcmp(argv[1], "spin") == 0)
        return pingpong(atol(argv[2]), 0);
    if (argc >= 3 && strcmp(argv[1], "futex") == 0)
        return pingpong(atol(argv[2]), 1);
    if (argc >= 5 && strcmp(argv[1], "ring") == 0)
        return ring((size_t)atol(argv[2]), atol(argv[3]), (size_t)atol(argv[4]));
    fprintf(stderr, "usage: %s spin N | futex N | ring SIZE N RING\n", argv[0]);
    return 2;
}
