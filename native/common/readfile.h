/*
 * readfile.h - a whole small text file into memory, NUL-terminated: what the
 * page server's --peers and remotedev's --tree loaders read before parsing.
 */
#ifndef AMALGAM_COMMON_READFILE_H
#define AMALGAM_COMMON_READFILE_H

#include <stddef.h>

#pragma GCC visibility push(hidden)

/*
 * *out: the file's bytes and a NUL (the caller frees it). 0, or -errno from
 * open/read, -EFBIG when the file is larger than max bytes, -ENOMEM.
 */
int amc_read_file(const char *file, size_t max, char **out);

#pragma GCC visibility pop

#endif
