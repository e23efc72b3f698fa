/* common_test.c - unit tests of native/common: number and address parsing, the member/node subject rules. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "../common/numparse.h"
#include "../common/readfile.h"
#include "../common/tls_peer.h"

#include "check.h"

static void numbers(void) {
  uint64_t v = 0;
  CHECK(amc_parse_u64("0x200000", 0, &v) == 0 && v == 0x200000);
  CHECK(amc_parse_u64("64M", AMC_NUM_SUFFIX, &v) == 0 && v == 64ull << 20);
  CHECK(amc_parse_u64("2g", AMC_NUM_SUFFIX, &v) == 0 && v == 2ull << 30);
  CHECK(amc_parse_u64("64M", 0, &v) == -EINVAL);
  CHECK(amc_parse_u64("64T", AMC_NUM_SUFFIX, &v) == -EINVAL);
  CHECK(amc_parse_u64("-1", 0, &v) == -EINVAL);
  CHECK(amc_parse_u64("+1", 0, &v) == -EINVAL);
  CHECK(amc_parse_u64("", 0, &v) == -EINVAL);
  CHECK(amc_parse_u64("12x", 0, &v) == -EINVAL);
  CHECK(amc_parse_u64("18446744073709551616", 0, &v) == -EINVAL);
  CHECK(amc_parse_u64("17179869184G", AMC_NUM_SUFFIX, &v) == -EINVAL); /* 2^64 */
  CHECK(amc_parse_u64("0x10", AMC_NUM_DECIMAL, &v) == -EINVAL);
  CHECK(amc_parse_u64_n("4096@x", 4, 0, &v) == 0 && v == 4096);
  CHECK(amc_parse_range("65536", 0, 65536, &v) == 0 && v == 65536);
  CHECK(amc_parse_range("65537", 0, 65536, &v) == -EINVAL);
  CHECK(amc_parse_range("0", 1, 10, &v) == -EINVAL);
  uint16_t port = 0;
  CHECK(amc_parse_port("7070", &port) == 0 && port == 7070);
  CHECK(amc_parse_port("0", &port) == -EINVAL);
  CHECK(amc_parse_port("65536", &port) == -EINVAL);
}

static void host_ports(void) {
  char host[16], port[8];
  CHECK(amc_split_host_port("127.0.0.1:7070", host, sizeof host, port, sizeof port) == 0);
  CHECK(!strcmp(host, "127.0.0.1") && !strcmp(port, "7070"));
  CHECK(amc_split_host_port("[::1]:0", host, sizeof host, port, sizeof port) == 0);
  CHECK(!strcmp(host, "::1") && !strcmp(port, "0"));
  CHECK(amc_split_host_port("[::1:80", host, sizeof host, port, sizeof port) == -EINVAL);
  CHECK(amc_split_host_port(":80", host, sizeof host, port, sizeof port) == -EINVAL);
  CHECK(amc_split_host_port("host:", host, sizeof host, port, sizeof port) == -EINVAL);
  CHECK(amc_split_host_port("nocolon", host, sizeof host, port, sizeof port) == -EINVAL);
  CHECK(amc_split_host_port("a-very-long-host-name:1", host, sizeof host, port, sizeof port) ==
        -EINVAL);
}

static void subjects(void) {
#ifndef AMALGAM_NO_TLS
  CHECK(amc_tls_subject_is_member("node:a1", "amalgam:nodes"));
  CHECK(amc_tls_subject_is_member("admin", "amalgam:admins"));
  CHECK(!amc_tls_subject_is_member("admin", "amalgam:nodes"));
  CHECK(!amc_tls_subject_is_member("node:", "amalgam:nodes"));
  CHECK(!amc_tls_subject_is_member("node:-a", "amalgam:nodes"));
  CHECK(!amc_tls_subject_is_member("node:A", "amalgam:nodes"));
  CHECK(amc_tls_subject_is_node("node:a1", "amalgam:nodes"));
  CHECK(!amc_tls_subject_is_node("admin", "amalgam:admins"));
  CHECK(!amc_tls_subject_is_node(NULL, "amalgam:nodes"));
#endif
  CHECK(amc_node_name_valid("a-1") && !amc_node_name_valid("a-") && !amc_node_name_valid(""));
}

static void read_files(void) {
  char path[] = "/tmp/amc_read_file_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  char big[10000];
  memset(big, 'x', sizeof big);
  CHECK(write(fd, big, sizeof big) == (ssize_t)sizeof big);
  close(fd);
  char *buf = NULL;
  CHECK(amc_read_file(path, sizeof big, &buf) == 0 && buf && strlen(buf) == sizeof big);
  free(buf);
  CHECK(amc_read_file(path, sizeof big - 1, &buf) == -EFBIG && buf == NULL);
  unlink(path);
  CHECK(amc_read_file(path, 1 << 20, &buf) == -ENOENT && buf == NULL);
}

int main(void) {
  read_files();
  numbers();
  host_ports();
  subjects();
  if (failures) {
    fprintf(stderr, "common_test: %d failure(s)\n", failures);
    return 1;
  }
  printf("common_test: ok\n");
  return 0;
}
