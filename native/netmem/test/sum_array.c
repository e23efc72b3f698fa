/*
 * sum_array.c - a plain C program that knows nothing of amalgam: it checksums
 * an array of u64 words, either the file given as its argument (a local copy)
 * or the memory at NETMEM_ADDR / NETMEM_SIZE (where netmem-run maps a remote
 * segment). Prints `sum <hex> hash <hex> bytes <n>`: the wrapping sum of the
 * little-endian words and an FNV-1a-style hash over them (order sensitive).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  const uint64_t *words;
  size_t bytes;
  if (argc > 1) {
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
      perror(argv[1]);
      return 1;
    }
    fseek(f, 0, SEEK_END);
    bytes = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint64_t *buf = malloc(bytes + 8);
    if (!buf || fread(buf, 1, bytes, f) != bytes) {
      perror("read");
      return 1;
    }
    fclose(f);
    words = buf;
  } else {
    const char *a = getenv("NETMEM_ADDR"), *s = getenv("NETMEM_SIZE");
    if (!a || !s) {
      fprintf(stderr, "usage: sum_array FILE, or run under netmem-run (NETMEM_ADDR, NETMEM_SIZE)\n");
      return 2;
    }
    words = (const uint64_t *)(uintptr_t)strtoull(a, NULL, 16);
    bytes = (size_t)strtoull(s, NULL, 10);
  }
  uint64_t sum = 0, hash = 1469598103934665603ull;
  for (size_t i = 0; i < bytes / 8; i++) {
    uint64_t w = words[i];
    sum += w;
    hash = (hash ^ w) * 1099511628211ull;
  }
  printf("sum %016llx hash %016llx bytes %zu\n", (unsigned long long)sum,
         (unsigned long long)hash, bytes);
  return 0;
}
