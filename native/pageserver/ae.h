/*
 * ae.h - a tiny event loop (after redis src/ae.h): file events only, one
 * callback per fd, level-triggered. The backend (epoll) lives in ae_epoll.c.
 * Functions return 0 or -errno.
 */
#ifndef AMALGAM_AE_H
#define AMALGAM_AE_H

#define AE_NONE 0
#define AE_READABLE 1
#define AE_WRITABLE 2

typedef struct ae_loop ae_loop;
typedef void ae_file_proc(ae_loop *loop, int fd, void *client_data, int mask);

/* Create a loop able to watch fds in [0, setsize). */
int ae_create(ae_loop **out, int setsize);
void ae_destroy(ae_loop *loop);
/* Add mask to the events watched on fd (proc/client_data replace earlier ones). */
int ae_add(ae_loop *loop, int fd, int mask, ae_file_proc *proc, void *client_data);
/* Remove mask from the events watched on fd. */
int ae_del(ae_loop *loop, int fd, int mask);
int ae_mask(const ae_loop *loop, int fd);
/* Ask ae_run to return after the current iteration. */
void ae_stop(ae_loop *loop);
/* Run until ae_stop; returns 0, or -errno when the backend fails. */
int ae_run(ae_loop *loop);

#endif
