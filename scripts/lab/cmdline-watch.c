/*
 * Watch every new process's command line for a secret until SIGTERM.
 * usage: cmdline-watch PATTERN_FILE OUT_FILE
 *
 * The labs run it while a CIFS volume with a password is created and mounted, to prove the
 * password reaches no argv. It hears of each exec from the kernel's process connector
 * (netlink, PROC_EVENT_EXEC) and reads that process's /proc/PID/cmdline at once, and scans all
 * of /proc every 50 ms besides (for a process that was exec'd before it started, or whose
 * event the socket dropped under load). Polling /proc every 2 ms from node, as the labs did,
 * took a whole vCPU under emulation and starved the very mount.cifs it watched.
 * The secret is read from a file so that it is not in this process's own command line.
 * Processes named `docker` (the CLI a scenario itself runs with the secret) are ignored.
 * Built static on the host (cc -static -O2), run as root in the guests.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SEEN 4096

static volatile sig_atomic_t stop;
static char secret[512];
static size_t secret_len;
static FILE *out;
static unsigned long scans, events, hits;
static struct { int pid; char comm[64]; } seen[MAX_SEEN];
static int nseen;

static void on_term(int sig) { (void)sig; stop = 1; }

static long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

static int read_file(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t n = 0;
  ssize_t r;
  while (n < cap && (r = read(fd, buf + n, cap - n)) > 0) n += (size_t)r;
  close(fd);
  return (int)n;
}

static int contains(const char *buf, size_t n) {
  if (secret_len == 0 || n < secret_len) return 0;
  for (size_t i = 0; i + secret_len <= n; i++)
    if (memcmp(buf + i, secret, secret_len) == 0) return 1;
  return 0;
}

static void check_pid(int pid) {
  char path[64], cmd[65536], comm[64];
  snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
  int n = read_file(path, cmd, sizeof cmd - 1);
  if (n <= 0 || !contains(cmd, (size_t)n)) return;
  snprintf(path, sizeof path, "/proc/%d/comm", pid);
  int c = read_file(path, comm, sizeof comm - 1);
  comm[c > 0 ? c : 0] = 0;
  char *nl = strchr(comm, '\n');
  if (nl) *nl = 0;
  if (strcmp(comm, "docker") == 0) return;
  /* Once per process image: an exec under the same pid is a new command line. */
  for (int i = 0; i < nseen; i++)
    if (seen[i].pid == pid && strncmp(seen[i].comm, comm, sizeof seen[i].comm - 1) == 0) return;
  if (nseen < MAX_SEEN) {
    seen[nseen].pid = pid;
    snprintf(seen[nseen].comm, sizeof seen[nseen].comm, "%s", comm);
    nseen++;
  }
  hits++;
  /* The record names the process and masks the secret itself. */
  fprintf(out, "pid %d comm %s:", pid, comm);
  for (int i = 0; i < n;) {
    if ((size_t)(n - i) >= secret_len && memcmp(cmd + i, secret, secret_len) == 0) {
      fputs("<PASSWORD>", out);
      i += (int)secret_len;
    } else {
      fputc(cmd[i] ? cmd[i] : ' ', out);
      i++;
    }
  }
  fputc('\n', out);
  fflush(out);
}

static void scan_all(void) {
  scans++;
  DIR *d = opendir("/proc");
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    check_pid(atoi(e->d_name));
  }
  closedir(d);
}

static int open_connector(void) {
  int s = socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
  if (s < 0) return -1;
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC, .nl_pid = (unsigned)getpid() };
  if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) { close(s); return -1; }
  struct {
    struct nlmsghdr nl;
    struct cn_msg cn;
    enum proc_cn_mcast_op op;
  } __attribute__((packed)) req;
  memset(&req, 0, sizeof req);
  req.nl.nlmsg_len = sizeof req;
  req.nl.nlmsg_type = NLMSG_DONE;
  req.nl.nlmsg_pid = (unsigned)getpid();
  req.cn.id.idx = CN_IDX_PROC;
  req.cn.id.val = CN_VAL_PROC;
  req.cn.len = sizeof(enum proc_cn_mcast_op);
  req.op = PROC_CN_MCAST_LISTEN;
  if (send(s, &req, sizeof req, 0) < 0) { close(s); return -1; }
  /* A larger buffer: a burst of execs (dockerd starting a task) must not drop events. */
  int rcv = 4 << 20;
  setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv);
  return s;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: cmdline-watch PATTERN_FILE OUT_FILE\n");
    return 2;
  }
  int n = read_file(argv[1], secret, sizeof secret - 1);
  if (n <= 0) {
    fprintf(stderr, "cmdline-watch: cannot read a secret from %s\n", argv[1]);
    return 2;
  }
  secret_len = (size_t)n;
  out = fopen(argv[2], "w");
  if (!out) {
    fprintf(stderr, "cmdline-watch: cannot write %s: %s\n", argv[2], strerror(errno));
    return 2;
  }
  struct sigaction sa = { .sa_handler = on_term };
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  int s = open_connector();
  if (s < 0) fprintf(stderr, "cmdline-watch: no process connector (%s): scanning /proc every 50 ms only\n", strerror(errno));
  scan_all();
  long last_scan = now_ms();
  char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
  while (!stop) {
    struct pollfd p = { .fd = s, .events = POLLIN };
    int r = s >= 0 ? poll(&p, 1, 50) : (usleep(50000), 0);
    if (r > 0) {
      ssize_t len = recv(s, buf, sizeof buf, 0);
      if (len < 0 && errno == ENOBUFS) { scan_all(); continue; }
      for (struct nlmsghdr *h = (struct nlmsghdr *)buf; len > 0 && NLMSG_OK(h, (size_t)len); h = NLMSG_NEXT(h, len)) {
        struct cn_msg *cn = NLMSG_DATA(h);
        struct proc_event *ev = (struct proc_event *)cn->data;
        if (ev->what == PROC_EVENT_EXEC) {
          events++;
          check_pid((int)ev->event_data.exec.process_pid);
        }
      }
    }
    if (now_ms() - last_scan >= 50) {
      scan_all();
      last_scan = now_ms();
    }
  }
  printf("cmdline-watch: %lu exec events, %lu scans, %lu hits%s\n", events, scans, hits, s < 0 ? " (no process connector)" : "");
  return 0;
}
