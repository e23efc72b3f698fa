/*
 * remotedev_fuse.c - remotedev-fuse: the network device space as a file
 * tree. Mounts DIR with a directory per machine and a file per exported
 * device (/remotedev/<machine>/<dev>); reads and writes go to the owner's
 * page server as DEVICE_READ/DEVICE_WRITE (devclient.c). See native/README.md
 * ("Device I/O and the FUSE mount") for the contract with the agent.
 */
#define FUSE_USE_VERSION 31

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <fuse.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/numparse.h"
#include "../include/amalgam_wire.h"
#include "devclient.h"
#include "tree.h"

static const char usage[] =
    "usage: remotedev-fuse --mount DIR --tree FILE\n"
    "                      [--cert FILE --key FILE --ca FILE | --plaintext-loopback]\n"
    "                      [--foreground] [--ro-cache-mb N] [--timeout-ms N] [--allow-other]\n"
    "\n"
    "Mounts the network device space on DIR: DIR/<machine>/<dev> for every line\n"
    "`<machine> <dev> <size-bytes> <ro|rw> <host:port> <tls|plain>` of FILE; reads and\n"
    "writes go to the owner's page server. SIGHUP re-reads FILE; SIGTERM/SIGINT unmount.\n"
    "\n"
    "  --cert/--key/--ca      this node's certificate, key and the cluster CA (PEM) for\n"
    "                         the owners marked tls (mutual TLS)\n"
    "  --plaintext-loopback   no TLS identity: only owners marked plain can be reached\n"
    "  --foreground           do not detach (the first stdout line is `mounted DIR`);\n"
    "                         detached, stdout and stderr go to /dev/null\n"
    "  --ro-cache-mb N        read cache for ro devices in MiB (default 16, 0: none);\n"
    "                         rw devices are never cached\n"
    "  --timeout-ms N         bound on every connect/send/receive to an owner (default\n"
    "                         5000): past it the operation fails with EIO\n"
    "  --allow-other          let other users use the mount (mount option allow_other,\n"
    "                         with default_permissions); default: only the mounting user\n";

/* ---- state ---- */

static pthread_rwlock_t g_tree_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct tree *g_tree;
static const char *g_tree_file;
static uid_t g_uid;
static gid_t g_gid;
static struct timespec g_mtime;

/* An open device file: which device (looked up again on every call, so a SIGHUP is seen). */
struct openfile {
  char machine[64];
  char dev[64];
  int ro;
};

/* ---- the read cache for ro devices: direct-mapped blocks ---- */

#define CBLOCK (64u * 1024u)
/* Reads at least this long bypass the cache (sequential bulk reads gain nothing from it). */
#define CACHE_BYPASS (256u * 1024u)

struct cslot {
  pthread_mutex_t mu;
  uint64_t gen;
  char key[130]; /* machine/dev */
  uint64_t blk;
  uint32_t len; /* valid bytes (the last block of a device may be short) */
  int valid;
  uint8_t *data;
};

static struct cslot *g_cache;
static size_t g_cache_slots;
static atomic_uint_fast64_t g_cache_gen = 1;

static int cache_init(unsigned mb) {
  g_cache_slots = (size_t)mb * (1024u * 1024u) / CBLOCK;
  if (g_cache_slots == 0) return 0;
  g_cache = calloc(g_cache_slots, sizeof *g_cache);
  if (!g_cache) return -ENOMEM;
  for (size_t i = 0; i < g_cache_slots; i++) {
    pthread_mutex_init(&g_cache[i].mu, NULL);
    if (!(g_cache[i].data = malloc(CBLOCK))) return -ENOMEM;
  }
  return 0;
}

static uint64_t hash_key(const char *key, uint64_t blk) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (const char *p = key; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
  h ^= blk * 0x9e3779b97f4a7c15ull;
  return h ^ (h >> 29);
}

/* Read [off, off+len) (inside the device) of an ro device through the cache. */
static long cached_read(const struct tree_dev *d, char *buf, size_t len, uint64_t off) {
  char key[130];
  snprintf(key, sizeof key, "%s/%s", d->machine, d->dev);
  uint64_t gen = atomic_load(&g_cache_gen);
  size_t done = 0;
  while (done < len) {
    uint64_t pos = off + done;
    uint64_t blk = pos / CBLOCK;
    uint64_t bstart = blk * CBLOCK;
    uint32_t blen = (uint32_t)(d->size - bstart < CBLOCK ? d->size - bstart : CBLOCK);
    size_t in = (size_t)(pos - bstart);
    size_t n = blen - in < len - done ? blen - in : len - done;
    struct cslot *s = &g_cache[hash_key(key, blk) % g_cache_slots];
    pthread_mutex_lock(&s->mu);
    if (!(s->valid && s->gen == gen && s->blk == blk && s->len == blen &&
          strcmp(s->key, key) == 0)) {
      s->valid = 0;
      long r = devclient_read(d->ep, d->dev, bstart, s->data, blen);
      if (r < 0) {
        pthread_mutex_unlock(&s->mu);
        return r;
      }
      strcpy(s->key, key);
      s->blk = blk;
      s->len = blen;
      s->gen = gen;
      s->valid = 1;
    }
    memcpy(buf + done, s->data + in, n);
    pthread_mutex_unlock(&s->mu);
    done += n;
  }
  return (long)done;
}

/* ---- paths ---- */

enum node_kind { NODE_NONE, NODE_ROOT, NODE_MACHINE, NODE_DEVICE };

/* Split "/machine/dev" into its parts; the kind of path it names (not whether it exists). */
static enum node_kind split_path(const char *path, char *machine, char *dev) {
  machine[0] = dev[0] = '\0';
  if (strcmp(path, "/") == 0) return NODE_ROOT;
  if (path[0] != '/') return NODE_NONE;
  const char *m = path + 1;
  const char *slash = strchr(m, '/');
  size_t mlen = slash ? (size_t)(slash - m) : strlen(m);
  if (mlen == 0 || mlen >= 64) return NODE_NONE;
  memcpy(machine, m, mlen);
  machine[mlen] = '\0';
  if (!slash) return NODE_MACHINE;
  const char *d = slash + 1;
  size_t dlen = strlen(d);
  if (dlen == 0 || dlen >= 64 || strchr(d, '/')) return NODE_NONE;
  memcpy(dev, d, dlen + 1);
  return NODE_DEVICE;
}

/* Copy the tree entry for machine/dev: 0 or -ENOENT. */
static int lookup(const char *machine, const char *dev, struct tree_dev *out) {
  pthread_rwlock_rdlock(&g_tree_lock);
  const struct tree_dev *d = tree_find(g_tree, machine, dev);
  if (d) *out = *d;
  pthread_rwlock_unlock(&g_tree_lock);
  return d ? 0 : -ENOENT;
}

/* ---- operations ---- */

static void *rd_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
  /* 1 MiB requests (the wire's payload limit): the kernel then sends up to 256 pages. */
  conn->max_write = AMW_MAX_PAYLOAD;
  conn->max_read = 0;
  conn->want &= ~(unsigned)FUSE_CAP_ASYNC_READ;
  conn->want |= conn->capable & FUSE_CAP_ASYNC_DIO;
  cfg->direct_io = 1; /* no page cache: rw devices must see every write at once */
  cfg->kernel_cache = 0;
  cfg->entry_timeout = 1.0; /* a SIGHUP shows within a second */
  cfg->attr_timeout = 1.0;
  cfg->negative_timeout = 0;
  cfg->use_ino = 0;
  return NULL;
}

static int rd_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
  (void)fi;
  char machine[64], dev[64];
  memset(st, 0, sizeof *st);
  st->st_uid = g_uid;
  st->st_gid = g_gid;
  st->st_mtim = st->st_ctim = st->st_atim = g_mtime;
  enum node_kind k = path ? split_path(path, machine, dev) : NODE_NONE;
  if (k == NODE_ROOT) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    return 0;
  }
  if (k == NODE_MACHINE) {
    pthread_rwlock_rdlock(&g_tree_lock);
    int has = tree_has_machine(g_tree, machine);
    pthread_rwlock_unlock(&g_tree_lock);
    if (!has) return -ENOENT;
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    return 0;
  }
  if (k == NODE_DEVICE) {
    struct tree_dev d;
    if (lookup(machine, dev, &d) < 0) return -ENOENT;
    st->st_mode = S_IFREG | (d.ro ? 0440 : 0660);
    st->st_nlink = 1;
    st->st_size = (off_t)d.size;
    st->st_blksize = 4096;
    st->st_blocks = (blkcnt_t)((d.size + 511) / 512);
    return 0;
  }
  return -ENOENT;
}

static int rd_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t offset,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags) {
  (void)offset;
  (void)fi;
  (void)flags;
  char machine[64], dev[64];
  enum node_kind k = split_path(path, machine, dev);
  if (k != NODE_ROOT && k != NODE_MACHINE) return -ENOTDIR;
  int rc = 0;
  pthread_rwlock_rdlock(&g_tree_lock);
  if (k == NODE_MACHINE && !tree_has_machine(g_tree, machine)) rc = -ENOENT;
  if (rc == 0) {
    fill(buf, ".", NULL, 0, 0);
    fill(buf, "..", NULL, 0, 0);
    for (size_t i = 0; g_tree && i < g_tree->n; i++) {
      const struct tree_dev *d = &g_tree->devs[i];
      if (k == NODE_ROOT) {
        int seen = 0; /* list each machine once */
        for (size_t j = 0; j < i && !seen; j++)
          seen = strcmp(g_tree->devs[j].machine, d->machine) == 0;
        if (!seen) fill(buf, d->machine, NULL, 0, 0);
      } else if (strcmp(d->machine, machine) == 0) {
        fill(buf, d->dev, NULL, 0, 0);
      }
    }
  }
  pthread_rwlock_unlock(&g_tree_lock);
  return rc;
}

static int rd_open(const char *path, struct fuse_file_info *fi) {
  char machine[64], dev[64];
  if (split_path(path, machine, dev) != NODE_DEVICE) return -EISDIR;
  struct tree_dev d;
  if (lookup(machine, dev, &d) < 0) return -ENOENT;
  int acc = fi->flags & O_ACCMODE;
  if (d.ro && acc != O_RDONLY) return -EROFS;
  /* Ask the owner: is it exported (EACCES if not), is it reachable (EIO), is it ro? */
  uint64_t size;
  uint32_t flags;
  int rc = devclient_stat(d.ep, d.dev, &size, &flags);
  if (rc < 0) return rc;
  if ((flags & AMW_DEVF_RO) && acc != O_RDONLY) return -EROFS;
  struct openfile *of = calloc(1, sizeof *of);
  if (!of) return -ENOMEM;
  strcpy(of->machine, machine);
  strcpy(of->dev, dev);
  of->ro = d.ro || (flags & AMW_DEVF_RO);
  fi->fh = (uint64_t)(uintptr_t)of;
  fi->direct_io = 1;
  fi->keep_cache = 0;
  return 0;
}

static int rd_release(const char *path, struct fuse_file_info *fi) {
  (void)path;
  free((void *)(uintptr_t)fi->fh);
  return 0;
}

static int rd_read(const char *path, char *buf, size_t size, off_t off,
                   struct fuse_file_info *fi) {
  (void)path;
  struct openfile *of = (void *)(uintptr_t)fi->fh;
  struct tree_dev d;
  if (off < 0) return -EINVAL;
  if (lookup(of->machine, of->dev, &d) < 0) return -EACCES; /* no longer exported */
  if ((uint64_t)off >= d.size) return 0;
  if (size > d.size - (uint64_t)off) size = (size_t)(d.size - (uint64_t)off);
  if (size == 0) return 0;
  long r;
  if (of->ro && g_cache_slots > 0 && size < CACHE_BYPASS)
    r = cached_read(&d, buf, size, (uint64_t)off);
  else
    r = devclient_read(d.ep, d.dev, (uint64_t)off, buf, size);
  return r < 0 ? (int)r : (int)r;
}

static int rd_write(const char *path, const char *buf, size_t size, off_t off,
                    struct fuse_file_info *fi) {
  (void)path;
  struct openfile *of = (void *)(uintptr_t)fi->fh;
  if (of->ro) return -EROFS;
  struct tree_dev d;
  if (off < 0) return -EINVAL;
  if (lookup(of->machine, of->dev, &d) < 0) return -EACCES;
  if (d.ro) return -EROFS;
  if ((uint64_t)off >= d.size) return size == 0 ? 0 : -ENOSPC; /* like a block device */
  if (size > d.size - (uint64_t)off) size = (size_t)(d.size - (uint64_t)off);
  long r = devclient_write(d.ep, d.dev, (uint64_t)off, buf, size);
  return (int)r;
}

static int rd_fsync(const char *path, int datasync, struct fuse_file_info *fi) {
  (void)path;
  (void)datasync;
  struct openfile *of = (void *)(uintptr_t)fi->fh;
  if (of->ro) return 0;
  struct tree_dev d;
  if (lookup(of->machine, of->dev, &d) < 0) return -EACCES;
  return devclient_fsync(d.ep, d.dev);
}

static int rd_flush(const char *path, struct fuse_file_info *fi) {
  (void)path;
  (void)fi;
  return 0; /* nothing is cached for writing */
}

/* Opening with O_TRUNC (plain `dd of=`) lands here: a device has a fixed size, like a block device. */
static int rd_truncate(const char *path, off_t size, struct fuse_file_info *fi) {
  (void)size;
  char machine[64], dev[64];
  struct tree_dev d;
  if (fi) {
    struct openfile *of = (void *)(uintptr_t)fi->fh;
    if (lookup(of->machine, of->dev, &d) < 0) return -EACCES;
  } else {
    if (!path || split_path(path, machine, dev) != NODE_DEVICE) return -EISDIR;
    if (lookup(machine, dev, &d) < 0) return -ENOENT;
  }
  return d.ro ? -EROFS : 0;
}

static int rd_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi) {
  (void)path;
  (void)tv;
  (void)fi;
  return 0;
}

static int rd_statfs(const char *path, struct statvfs *st) {
  (void)path;
  memset(st, 0, sizeof *st);
  st->f_bsize = st->f_frsize = 4096;
  st->f_namemax = 63;
  return 0;
}

static const struct fuse_operations ops = {
    .init = rd_init,
    .getattr = rd_getattr,
    .readdir = rd_readdir,
    .open = rd_open,
    .release = rd_release,
    .read = rd_read,
    .write = rd_write,
    .fsync = rd_fsync,
    .flush = rd_flush,
    .truncate = rd_truncate,
    .utimens = rd_utimens,
    .statfs = rd_statfs,
};

/* ---- SIGHUP: re-read the tree in a thread of its own ---- */

static sem_t g_reload_sem;
static atomic_int g_stopping;

static void on_sighup(int sig) {
  (void)sig;
  sem_post(&g_reload_sem); /* async-signal-safe */
}

static void reload_tree(void) {
  struct tree *t;
  char err[600];
  int rc = tree_load(g_tree_file, &t, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "remotedev-fuse: SIGHUP: keeping the previous tree: %s\n", err);
    return;
  }
  pthread_rwlock_wrlock(&g_tree_lock);
  struct tree *old = g_tree;
  g_tree = t;
  clock_gettime(CLOCK_REALTIME, &g_mtime);
  pthread_rwlock_unlock(&g_tree_lock);
  atomic_fetch_add(&g_cache_gen, 1); /* drop the read cache: devices may have changed */
  tree_free(old);
  fprintf(stderr, "remotedev-fuse: SIGHUP: now showing %zu devices from %s\n", t->n,
          g_tree_file);
}

static void *reload_thread(void *arg) {
  (void)arg;
  for (;;) {
    while (sem_wait(&g_reload_sem) < 0 && errno == EINTR) {
    }
    if (atomic_load(&g_stopping)) return NULL;
    reload_tree();
  }
}

/*
 * A daemon that was killed leaves a dead mount ("Transport endpoint is not
 * connected") that a new mount on the same directory would fail on: detach it
 * first (umount2 as root, else fusermount3 -u -z), so a supervisor can simply
 * start us again.
 */
static void clear_dead_mount(const char *dir) {
  struct stat st;
  if (stat(dir, &st) == 0 || errno != ENOTCONN) return;
  fprintf(stderr, "remotedev-fuse: %s is a dead mount (its daemon died): detaching it\n", dir);
  if (umount2(dir, MNT_DETACH) == 0) return;
  pid_t pid = fork();
  if (pid == 0) {
    execlp("fusermount3", "fusermount3", "-u", "-z", dir, (char *)NULL);
    _exit(127);
  }
  if (pid > 0) waitpid(pid, NULL, 0);
}

int main(int argc, char **argv) {
  enum {
    OPT_MOUNT = 1, OPT_TREE, OPT_CERT, OPT_KEY, OPT_CA, OPT_PLAIN, OPT_FG, OPT_CACHE,
    OPT_TIMEOUT, OPT_ALLOW_OTHER, OPT_HELP
  };
  static const struct option lopts[] = {
      {"mount", required_argument, NULL, OPT_MOUNT},
      {"tree", required_argument, NULL, OPT_TREE},
      {"cert", required_argument, NULL, OPT_CERT},
      {"key", required_argument, NULL, OPT_KEY},
      {"ca", required_argument, NULL, OPT_CA},
      {"plaintext-loopback", no_argument, NULL, OPT_PLAIN},
      {"foreground", no_argument, NULL, OPT_FG},
      {"ro-cache-mb", required_argument, NULL, OPT_CACHE},
      {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
      {"allow-other", no_argument, NULL, OPT_ALLOW_OTHER},
      {"help", no_argument, NULL, OPT_HELP},
      {NULL, 0, NULL, 0},
  };
  const char *mountpoint = NULL, *cert = NULL, *key = NULL, *ca = NULL;
  int plaintext = 0, foreground = 0, allow_other = 0, opt;
  uint64_t cache_mb = 16, timeout_ms = 5000;
  while ((opt = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
    switch (opt) {
    case OPT_MOUNT: mountpoint = optarg; break;
    case OPT_TREE: g_tree_file = optarg; break;
    case OPT_CERT: cert = optarg; break;
    case OPT_KEY: key = optarg; break;
    case OPT_CA: ca = optarg; break;
    case OPT_PLAIN: plaintext = 1; break;
    case OPT_FG: foreground = 1; break;
    case OPT_ALLOW_OTHER: allow_other = 1; break;
    case OPT_CACHE:
      if (amc_parse_range(optarg, 0, 65536, &cache_mb) < 0) {
        fprintf(stderr, "remotedev-fuse: --ro-cache-mb: expected 0..65536, got %s\n", optarg);
        return 2;
      }
      break;
    case OPT_TIMEOUT:
      if (amc_parse_range(optarg, 1, 3600000, &timeout_ms) < 0) {
        fprintf(stderr, "remotedev-fuse: --timeout-ms: expected 1..3600000, got %s\n", optarg);
        return 2;
      }
      break;
    case OPT_HELP: fputs(usage, stdout); return 0;
    default: fputs(usage, stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "remotedev-fuse: unexpected argument: %s\n%s", argv[optind], usage);
    return 2;
  }
  if (!mountpoint || !g_tree_file) {
    fprintf(stderr, "remotedev-fuse: --mount and --tree are required\n%s", usage);
    return 2;
  }
  int tls_given = (cert != NULL) + (key != NULL) + (ca != NULL);
  if (plaintext == (tls_given > 0) || (!plaintext && tls_given != 3)) {
    fprintf(stderr, "remotedev-fuse: give exactly one of --cert FILE --key FILE --ca FILE "
                    "(mutual TLS) or --plaintext-loopback\n");
    return 2;
  }
  char err[600];
  if (devclient_init(cert, key, ca, (int)timeout_ms, err, sizeof err) < 0) {
    fprintf(stderr, "remotedev-fuse: %s\n", err);
    return 1;
  }
  if (tree_load(g_tree_file, &g_tree, err, sizeof err) < 0) {
    fprintf(stderr, "remotedev-fuse: %s\n", err);
    return 2;
  }
  if (plaintext) {
    for (size_t i = 0; i < g_tree->n; i++)
      if (g_tree->devs[i].tls)
        fprintf(stderr,
                "remotedev-fuse: warning: %s/%s is marked tls but no --cert/--key/--ca was "
                "given: its I/O will fail with EIO\n",
                g_tree->devs[i].machine, g_tree->devs[i].dev);
  }
  if (cache_init((unsigned)cache_mb) < 0) {
    fprintf(stderr, "remotedev-fuse: cannot allocate a %u MiB read cache\n", (unsigned)cache_mb);
    return 1;
  }
  /*
   * libfuse allocates a buffer per read (up to 1 MiB) and frees it after the
   * reply: keep such buffers on the heap for reuse instead of a fresh mmap
   * (page faults and zeroing) each time.
   */
  mallopt(M_MMAP_THRESHOLD, 8 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
  g_uid = getuid();
  g_gid = getgid();
  clock_gettime(CLOCK_REALTIME, &g_mtime);
  sem_init(&g_reload_sem, 0, 0);
  /*
   * Hold SIGTERM/SIGINT/SIGHUP until our handlers are in place: a SIGHUP sent
   * as soon as `mounted` is printed must reload, not kill us (its default), and
   * a SIGTERM must unmount. Pending ones are delivered once the loop is ready.
   */
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &block, &old);

  char optstr[256];
  snprintf(optstr, sizeof optstr, "fsname=remotedev,subtype=amalgam,default_permissions%s",
           allow_other ? ",allow_other" : "");
  char *fargv[] = {argv[0], "-o", optstr, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
  struct fuse *f = fuse_new(&args, &ops, sizeof ops, NULL);
  if (!f) {
    fprintf(stderr, "remotedev-fuse: cannot create the file system\n");
    return 1;
  }
  clear_dead_mount(mountpoint);
  if (fuse_mount(f, mountpoint) != 0) {
    fprintf(stderr, "remotedev-fuse: cannot mount on %s (is /dev/fuse there, is fuse3 "
                    "installed, is the directory empty?)\n", mountpoint);
    fuse_destroy(f);
    return 1;
  }
  printf("mounted %s\n", mountpoint);
  fflush(stdout);
  fprintf(stderr, "remotedev-fuse: %s: %zu devices from %s, ro cache %" PRIu64 " MiB, timeout %" PRIu64 " ms\n",
          mountpoint, g_tree->n, g_tree_file, cache_mb, timeout_ms);
  if (fuse_daemonize(foreground) != 0) {
    fuse_unmount(f);
    fuse_destroy(f);
    return 1;
  }
  /* SIGTERM/SIGINT end the loop (fuse's handlers); SIGHUP is ours: reload. */
  struct fuse_session *se = fuse_get_session(f);
  if (fuse_set_signal_handlers(se) != 0) {
    fuse_unmount(f);
    fuse_destroy(f);
    return 1;
  }
  struct sigaction sa = {0};
  sa.sa_handler = on_sighup;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGHUP, &sa, NULL);
  /* The reloader never takes SIGTERM/SIGINT/SIGHUP (still blocked): they must reach the fuse threads. */
  pthread_t reloader;
  int prc = pthread_create(&reloader, NULL, reload_thread, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (prc != 0) {
    fprintf(stderr, "remotedev-fuse: cannot start the reload thread\n");
    fuse_remove_signal_handlers(se);
    fuse_unmount(f);
    fuse_destroy(f);
    return 1;
  }

  int rc = fuse_loop_mt(f, 0);

  atomic_store(&g_stopping, 1);
  sem_post(&g_reload_sem);
  pthread_join(reloader, NULL);
  signal(SIGHUP, SIG_IGN);
  fuse_remove_signal_handlers(se);
  fuse_unmount(f);
  fuse_destroy(f);
  fprintf(stderr, "remotedev-fuse: unmounted %s\n", mountpoint);
  tree_free(g_tree);
  /* fuse's signal handler leaves the signal number as the loop's result: that is a clean stop */
  return rc == 0 || rc == SIGTERM || rc == SIGINT ? 0 : 1;
}
