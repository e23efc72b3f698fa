/*
 * ae.h - a tiny event loop (after redis src/ae.h): file events, one callback
 * per fd, level-triggered, and one periodic tick (timeouts are swept from
 * it). The backend (epoll) lives in ae_epoll.c. Functions return 0 or -errno.
 */
#ifndef AMALGAM_AE_H
#define AMALGAM_AE_H

#define AE_NONE 0
#define AE_READABLE 1
#define AE_WRITABLE 2

typedef struct ae_loop ae_loop;
typedef void ae_file_proc(ae_loop *loop, int fd, void *client_data, int mask);
typedef void ae_tick_proc(ae_loop *loop, void *client_data, long long now_ms);

/* Create a loop able to watch fds in [0, setsize). */
int ae_create(ae_loop **out, int setsize);
void ae_destroy(ae_loop *loop);
/* Add mask to the events watched on fd (proc/client_data replace earlier ones). */
int ae_add(ae_loop *loop, int fd, int mask, ae_file_proc *proc, void *client_data);
/* Remove mask from the events watched on fd. */
int ae_del(ae_loop *loop, int fd, int mask);
int ae_mask(const ae_loop *loop, int fd);
/* Call proc about every period_ms (> 0) with the monotonic time in ms; one tick per loop. */
void ae_set_tick(ae_loop *loop, int period_ms, ae_tick_proc *proc, void *client_data);
/* The monotonic clock in milliseconds. */
long long ae_now_ms(void);
/* Ask ae_run to return after the current iteration. */
void ae_stop(ae_loop *loop);
/* Run until ae_stop; returns 0, or -errno when the backend fails. */
int ae_run(ae_loop *loop);

#endif
