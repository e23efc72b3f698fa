/*
 * devclient.h - the client side of the device requests (DEVICE_READ/WRITE/
 * STAT/FSYNC, native/include/amalgam_wire.h) used by remotedev-fuse and the
 * device benchmark tool: one endpoint per owner page server (HOST:PORT,
 * plaintext or mutual TLS), a pool of blocking connections per endpoint so
 * that many threads can each run a request at once, requests longer than
 * 1 MiB split into pipelined chunks, and a bounded timeout on every connect,
 * send and receive so that nothing hangs when an owner goes away.
 *
 * Every function is thread-safe and returns 0 (or a byte count) or -errno:
 *   -EACCES  the owner does not export the device (E_NO_DEVICE)
 *   -EROFS   a write to a device exported ro (E_READ_ONLY)
 *   -EINVAL  out of the device's range, or a bad name
 *   -EIO     the owner's I/O failed (E_IO), or it is unreachable / timed out;
 *            one line saying which and why goes to stderr.
 */
#ifndef AMALGAM_DEVCLIENT_H
#define AMALGAM_DEVCLIENT_H

#include <stddef.h>
#include <stdint.h>

struct dev_endpoint;

/*
 * Set up once, before any other call. cert/key/ca: PEM files of this node's
 * identity and the cluster CA (all NULL: plaintext only; TLS endpoints then
 * fail with -EIO). timeout_ms bounds every connect, send and receive.
 * Returns 0 or -errno with one line in err.
 */
int devclient_init(const char *cert, const char *key, const char *ca, int timeout_ms, char *err,
                   size_t errlen);

/*
 * The endpoint of node's page server at HOST:PORT ([v6]:PORT accepted) over
 * TLS or plaintext: interned (the same pointer for the same address,
 * transport and node), never freed. Over TLS the server's certificate must be
 * exactly node's (CN node:<node>): any other certificate (another node's, the
 * admin's) is refused at the handshake, logged with the node expected and the
 * certificate that answered, and the I/O fails with -EIO before any byte of a
 * request is sent. node may be NULL for plaintext only (loopback tests, the
 * bench). NULL when the address does not parse, node is not a node name, or a
 * TLS endpoint names no node.
 */
struct dev_endpoint *devclient_endpoint(const char *hostport, int tls, const char *node);
const char *devclient_endpoint_name(const struct dev_endpoint *ep);

/* Read len bytes at off of device name: returns the bytes read or -errno. */
long devclient_read(struct dev_endpoint *ep, const char *name, uint64_t off, void *buf,
                    size_t len);
/* Write len bytes at off: returns the bytes written or -errno. */
long devclient_write(struct dev_endpoint *ep, const char *name, uint64_t off, const void *buf,
                     size_t len);
/* Size and AMW_DEVF_* flags of device name on its owner. */
int devclient_stat(struct dev_endpoint *ep, const char *name, uint64_t *size, uint32_t *flags);
int devclient_fsync(struct dev_endpoint *ep, const char *name);

/* Status code of the wire to -errno (exposed for the tests). */
int devclient_status_errno(uint32_t status);

#endif
