/*
 * netvol fault lab: the writer that runs in a busybox container on a netvol NFS volume.
 *
 *   faultwriter DATAFILE EVENTFILE [PAUSE_MS]
 *
 * Appends records "<seq> <crc32 of payload, 8 hex> <payload>\n" to DATAFILE, fsyncs after
 * each one, and only then writes "A <seq> <start ms> <end ms>" to EVENTFILE: an A line means
 * the kernel said the record is on stable storage. The payload is a function of seq alone
 * (check-records.mjs computes the same), so the check can tell an intact record from a
 * damaged one without trusting anything the writer kept.
 *
 * Other EVENTFILE lines (times are CLOCK_REALTIME in ms, the guests' clocks are the host's):
 *   B <ms> <pid> <datafile>            started
 *   E <ms> <seq> <op> <ERRNO> <text>   a syscall failed (op: open, write, fsync)
 *   S <ms> <seq> <op> <ms taken>       a syscall that returned but took over a second
 *   Q <ms> <last seq>                  SIGTERM
 * A seq is never written twice: after a failure the writer reopens the file and goes on with
 * the next seq, as an application with its own log sequence would. So a seq found twice on
 * the server was duplicated below the application, never retried by it.
 *
 * Static (no libc in the busybox image); EVENTFILE sits on the lab's 9p share, whose writes
 * reach the host before write() returns, so the A lines survive a power cut of the client.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint32_t crc_table[256];
static int event_fd = -1;
static volatile sig_atomic_t stop_requested;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
}

static uint32_t crc32(const char *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) c = crc_table[(c ^ (uint8_t)p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

static uint32_t xorshift(uint32_t x) {
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return x;
}

/* Must match expectedPayload() in check-records.mjs. */
static size_t payload(unsigned long long seq, char *out) {
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  uint32_t x = ((uint32_t)seq * 2654435761u) | 1u;
  x = xorshift(x);
  size_t len = 24 + x % 96;
  for (size_t i = 0; i < len; i++) {
    x = xorshift(x);
    out[i] = alphabet[x % 36];
  }
  out[len] = 0;
  return len;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void emit(const char *fmt, ...) {
  char line[600];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof line - 2) n = sizeof line - 2;
  line[n++] = '\n';
  /* One write per line: the host reads the file while it grows. */
  if (write(event_fd, line, n) < 0) { /* nowhere left to report it */ }
}

static const char *errname(int e) {
  const char *name = strerrorname_np(e);
  return name ? name : "E?";
}

static void on_term(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void pause_ms(long ms) {
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !stop_requested) {}
}

static int open_data(const char *path, unsigned long long seq) {
  for (;;) {
    if (stop_requested) return -1;
    long long t0 = mono_ms();
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    int e = errno;
    long long took = mono_ms() - t0;
    if (took > 1000) emit("S %lld %llu open %lld", now_ms(), seq, took);
    if (fd >= 0) return fd;
    emit("E %lld %llu open %s %s", now_ms(), seq, errname(e), strerror(e));
    pause_ms(500);
  }
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: faultwriter DATAFILE EVENTFILE [PAUSE_MS]\n");
    return 2;
  }
  const char *data = argv[1];
  long pause = argc > 3 ? atol(argv[3]) : 100;
  event_fd = open(argv[2], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (event_fd < 0) {
    perror(argv[2]);
    return 2;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  crc_init();
  emit("B %lld %d %s", now_ms(), (int)getpid(), data);

  char pay[128], rec[192];
  unsigned long long seq = 0;
  int fd = open_data(data, 1);
  while (!stop_requested && fd >= 0) {
    seq++;
    size_t plen = payload(seq, pay);
    int rlen = snprintf(rec, sizeof rec, "%llu %08x %s\n", seq, crc32(pay, plen), pay);
    long long start = now_ms(), t0 = mono_ms();
    ssize_t n = write(fd, rec, rlen);
    int e = errno;
    long long took = mono_ms() - t0;
    if (took > 1000) emit("S %lld %llu write %lld", now_ms(), seq, took);
    const char *failed = NULL;
    if (n != rlen) {
      failed = "write";
      if (n >= 0) e = EIO; /* a short write: the record is not whole */
    } else {
      t0 = mono_ms();
      int r = fsync(fd);
      e = errno;
      took = mono_ms() - t0;
      if (took > 1000) emit("S %lld %llu fsync %lld", now_ms(), seq, took);
      if (r != 0) failed = "fsync";
    }
    if (failed) {
      emit("E %lld %llu %s %s %s", now_ms(), seq, failed, errname(e), strerror(e));
      close(fd);
      pause_ms(500);
      fd = open_data(data, seq + 1);
      continue;
    }
    emit("A %llu %lld %lld", seq, start, now_ms());
    if (pause > 0) pause_ms(pause);
  }
  emit("Q %lld %llu", now_ms(), seq);
  return 0;
}
