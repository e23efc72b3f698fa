/*
 * devices_test.c - unit tests of the device table (pageserver/devices.c), the
 * device request decoder (include/amalgam_wire.h) and the remotedev tree
 * parser (remotedev/tree.c). No sockets: files in a temp directory.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../include/amalgam_wire.h"
#include "../pageserver/devices.h"
#include "../remotedev/devclient.h"
#include "../remotedev/tree.h"

#include "check.h"

static char dir[] = "/tmp/devices_test.XXXXXX";

static void put(const char *name, const char *text) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  fputs(text, f);
  fclose(f);
}

static int load(const char *text, struct devtable **t, char *err) {
  put("devices", text);
  char p[256];
  snprintf(p, sizeof p, "%s/devices", dir);
  return devtable_load(p, t, err, 512);
}

static void name_field(uint8_t *p, const char *name) {
  memset(p, 0, AMW_DEV_NAME_SIZE);
  memcpy(p, name, strlen(name));
}

/* Run one device request through the decoder and the executor. */
static uint32_t exec(struct devtable *t, uint8_t *bounce, uint8_t op, const char *name,
                     uint64_t off, uint32_t len, const void *data, uint8_t *out,
                     uint32_t *out_len) {
  uint8_t buf[AMW_REQ_HEADER_SIZE];
  struct amw_req r;
  amw_encode_request(buf, op, 7, off, len);
  CHECK(amw_decode_request(buf, sizeof buf, &r) == 0);
  if (r.status != AMW_OK) return r.status;
  uint8_t *payload = malloc(r.payload_len);
  name_field(payload, name);
  if (data) memcpy(payload + AMW_DEV_NAME_SIZE, data, len);
  uint32_t status;
  struct memrange mr = {0};
  devices_execute(t, bounce, &mr, &r, payload, out, &status, out_len);
  free(payload);
  return status;
}

int main(void) {
  CHECK(mkdtemp(dir) != NULL);
  char img[256], err[512];
  snprintf(img, sizeof img, "%s/disk.img", dir);
  int fd = open(img, O_CREAT | O_RDWR, 0644);
  CHECK(fd >= 0 && ftruncate(fd, 1 << 20) == 0);
  close(fd);

  /* names */
  CHECK(amw_dev_name_valid("disk0", 5));
  CHECK(amw_dev_name_valid("a.b_c-d", 7));
  CHECK(!amw_dev_name_valid("-x", 2));
  CHECK(!amw_dev_name_valid("Disk", 4));
  CHECK(!amw_dev_name_valid("", 0));
  char longname[70];
  memset(longname, 'a', 63);
  longname[63] = '\0';
  CHECK(amw_dev_name_valid(longname, 63));
  CHECK(!amw_dev_name_valid(longname, 64));
  uint8_t field[AMW_DEV_NAME_SIZE];
  char out_name[AMW_DEV_NAME_SIZE];
  name_field(field, "disk0");
  CHECK(amw_dev_name_decode(field, out_name) == 0 && strcmp(out_name, "disk0") == 0);
  field[10] = 'x'; /* garbage after the NUL */
  CHECK(amw_dev_name_decode(field, out_name) == -EINVAL);
  memset(field, 'a', sizeof field); /* no NUL */
  CHECK(amw_dev_name_decode(field, out_name) == -EINVAL);

  /* decoder */
  uint8_t h[AMW_REQ_HEADER_SIZE];
  struct amw_req r;
  amw_encode_request(h, AMW_OP_DEVICE_WRITE, 1, 0, 100);
  CHECK(amw_decode_request(h, sizeof h, &r) == 0 && r.status == AMW_OK &&
        r.payload_len == AMW_DEV_NAME_SIZE + 100);
  amw_encode_request(h, AMW_OP_DEVICE_WRITE, 1, 0, AMW_MAX_PAYLOAD + 1);
  CHECK(amw_decode_request(h, sizeof h, &r) == 0 && r.status == AMW_E_TOO_LARGE && !r.fatal &&
        r.payload_len == AMW_DEV_NAME_SIZE + AMW_MAX_PAYLOAD + 1);
  amw_encode_request(h, AMW_OP_DEVICE_WRITE, 1, 0, UINT32_MAX);
  CHECK(amw_decode_request(h, sizeof h, &r) == 0 && r.status == AMW_E_TOO_LARGE && r.fatal);
  amw_encode_request(h, AMW_OP_DEVICE_READ, 1, 0, AMW_MAX_PAYLOAD);
  CHECK(amw_decode_request(h, sizeof h, &r) == 0 && r.status == AMW_OK &&
        r.payload_len == AMW_DEV_NAME_SIZE);
  amw_encode_request(h, AMW_OP_DEVICE_STAT, 1, 8, 0);
  CHECK(amw_decode_request(h, sizeof h, &r) == 0 && r.status == AMW_E_BAD_REQUEST &&
        !r.fatal && r.payload_len == AMW_DEV_NAME_SIZE);

  /* table: syntax errors fail the whole load */
  struct devtable *t = NULL;
  CHECK(load("disk0 rx /x\n", &t, err) == -EINVAL && strstr(err, ":1:"));
  CHECK(load("Disk0 rw /x\n", &t, err) == -EINVAL && strstr(err, "device name"));
  CHECK(load("disk0 rw\n", &t, err) == -EINVAL && strstr(err, "no path"));
  char text[1024];
  snprintf(text, sizeof text, "disk0 rw %s\ndisk0 ro %s\n", img, img);
  CHECK(load(text, &t, err) == -EINVAL && strstr(err, "twice"));
  /* an unopenable path is left out; comments and blank lines are ignored */
  snprintf(text, sizeof text,
           "# devices\n\ndisk0 rw %s  # the image\nrodisk ro %s\nmissing rw %s/nope\n", img, img,
           dir);
  CHECK(load(text, &t, err) == 0);
  CHECK(t && t->n == 2);
  CHECK(devtable_find(t, "disk0") && !devtable_find(t, "disk0")->ro);
  CHECK(devtable_find(t, "rodisk") && devtable_find(t, "rodisk")->ro);
  CHECK(!devtable_find(t, "missing"));
  CHECK(devtable_find(t, "disk0")->size == 1 << 20);

  uint8_t *bounce = devices_bounce_alloc();
  CHECK(bounce && ((uintptr_t)bounce & 4095) == 0);
  static uint8_t out[AMW_MAX_PAYLOAD];
  uint32_t n;
  const char msg[] = "hello, device";
  CHECK(exec(t, bounce, AMW_OP_DEVICE_WRITE, "disk0", 4093, sizeof msg, msg, out, &n) == AMW_OK);
  CHECK(exec(t, bounce, AMW_OP_DEVICE_READ, "rodisk", 4093, sizeof msg, NULL, out, &n) == AMW_OK);
  CHECK(n == sizeof msg && memcmp(out, msg, sizeof msg) == 0);
  CHECK(exec(t, bounce, AMW_OP_DEVICE_WRITE, "rodisk", 0, 4, "abcd", out, &n) == AMW_E_READ_ONLY);
  CHECK(exec(t, bounce, AMW_OP_DEVICE_READ, "nope", 0, 4, NULL, out, &n) == AMW_E_NO_DEVICE);
  CHECK(exec(t, bounce, AMW_OP_DEVICE_READ, "BAD", 0, 4, NULL, out, &n) == AMW_E_BAD_REQUEST);
  CHECK(exec(t, bounce, AMW_OP_DEVICE_READ, "disk0", (1 << 20) - 4, 5, NULL, out, &n) ==
        AMW_E_OUT_OF_RANGE);
  CHECK(exec(t, bounce, AMW_OP_DEVICE_READ, "disk0", UINT64_MAX - 1, 4, NULL, out, &n) ==
        AMW_E_OUT_OF_RANGE);
  CHECK(exec(t, bounce, AMW_OP_DEVICE_READ, "disk0", (1 << 20) - 4, 4, NULL, out, &n) == AMW_OK &&
        n == 4);
  CHECK(exec(t, bounce, AMW_OP_DEVICE_STAT, "rodisk", 0, 0, NULL, out, &n) == AMW_OK && n == 16);
  struct amw_dev_stat st;
  memcpy(&st, out, sizeof st);
  CHECK(le64toh(st.size) == 1 << 20 && le32toh(st.flags) == AMW_DEVF_RO &&
        le32toh(st.block_size) == 4096);
  CHECK(exec(t, bounce, AMW_OP_DEVICE_FSYNC, "disk0", 0, 0, NULL, out, &n) == AMW_OK && n == 0);
  /* no table: every name is E_NO_DEVICE */
  CHECK(exec(NULL, bounce, AMW_OP_DEVICE_STAT, "disk0", 0, 0, NULL, out, &n) == AMW_E_NO_DEVICE);
  /* a character device: unsized, not bounds-checked */
  struct devtable *c = NULL;
  CHECK(load("zero ro /dev/zero\n", &c, err) == 0 && c->n == 1);
  CHECK(exec(c, bounce, AMW_OP_DEVICE_READ, "zero", 1ull << 40, 8, NULL, out, &n) == AMW_OK &&
        n == 8);
  CHECK(exec(c, bounce, AMW_OP_DEVICE_STAT, "zero", 0, 0, NULL, out, &n) == AMW_OK);
  memcpy(&st, out, sizeof st);
  CHECK(le64toh(st.size) == 0 && le32toh(st.flags) == (AMW_DEVF_RO | AMW_DEVF_UNSIZED));
  devtable_free(c);
  devtable_free(t);
  free(bounce);

  /* remotedev tree */
  struct tree *tr = NULL;
  CHECK(tree_parse("# tree\n\nb disk0 67108864 rw 127.0.0.1:7070 plain\n"
                   "b rodisk 1024 ro [::1]:7071 tls # a comment\n"
                   "c disk0 5 rw host.example:1 plain\n",
                   "t", &tr, err, sizeof err) == 0);
  CHECK(tr && tr->n == 3);
  const struct tree_dev *d = tree_find(tr, "b", "rodisk");
  CHECK(d && d->ro && d->tls && d->size == 1024);
  CHECK(d && strcmp(devclient_endpoint_name(d->ep), "[::1]:7071") == 0);
  CHECK(tree_find(tr, "b", "disk0")->ep == devclient_endpoint("127.0.0.1:7070", 0, "b"));
  /* the same address for another node is another endpoint (checked against that node) */
  CHECK(tree_find(tr, "b", "disk0")->ep != devclient_endpoint("127.0.0.1:7070", 0, "c"));
  CHECK(devclient_endpoint("127.0.0.1:7070", 1, NULL) == NULL);
  CHECK(devclient_endpoint("127.0.0.1:7070", 1, "Not_a_node") == NULL);
  CHECK(tree_has_machine(tr, "c") && !tree_has_machine(tr, "d"));
  tree_free(tr);
  CHECK(tree_parse("b disk0 64 rw 127.0.0.1:1\n", "t", &tr, err, sizeof err) == -EINVAL &&
        strstr(err, "t:1:"));
  CHECK(tree_parse("B disk0 64 rw 127.0.0.1:1 plain\n", "t", &tr, err, sizeof err) == -EINVAL);
  CHECK(tree_parse("b disk0 -1 rw 127.0.0.1:1 plain\n", "t", &tr, err, sizeof err) == -EINVAL);
  CHECK(tree_parse("b disk0 64 rx 127.0.0.1:1 plain\n", "t", &tr, err, sizeof err) == -EINVAL);
  CHECK(tree_parse("b disk0 64 rw nohost plain\n", "t", &tr, err, sizeof err) == -EINVAL);
  CHECK(tree_parse("b disk0 64 rw 127.0.0.1:1 ssl\n", "t", &tr, err, sizeof err) == -EINVAL);
  CHECK(tree_parse("b d 1 rw h:1 plain\nb d 2 rw h:1 plain\n", "t", &tr, err, sizeof err) ==
            -EINVAL &&
        strstr(err, "twice"));
  CHECK(devclient_status_errno(AMW_E_NO_DEVICE) == -EACCES);
  CHECK(devclient_status_errno(AMW_E_READ_ONLY) == -EROFS);
  CHECK(devclient_status_errno(AMW_E_IO) == -EIO);

  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) failures++;
  if (failures) {
    fprintf(stderr, "devices_test: %d failures\n", failures);
    return 1;
  }
  printf("devices_test: ok\n");
  return 0;
}
