/*
 * server.h — vigild's server object: listeners, connections, the group
 * commit writer and the query workers around one open store.
 *
 * Life cycle: vg_server_new() loads the auth file and the TLS certificate
 * (when configured), binds the listeners and starts the threads;
 * vg_server_run() runs the libev loop until SIGINT/SIGTERM (or
 * vg_server_stop() from the loop thread) and then shuts down cleanly: stop
 * accepting, stop reading requests, let queued writes commit and be
 * acknowledged, cancel running queries, flush what can be flushed, join
 * the threads.  vg_server_free() releases everything but the store, which
 * the caller opened and closes.
 */
#ifndef VG_SERVER_H
#define VG_SERVER_H

#include "vg_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vg_server vg_server_t;

typedef struct vg_server_config {
	const char *listen;        /* "host:port"; NULL or "" for no TCP listener */
	const char *unix_path;     /* NULL for no Unix socket */
	unsigned max_connections;  /* beyond it: an error frame, then close */
	size_t max_frame;          /* largest request frame accepted, bytes */
	size_t max_output;         /* buffered output per connection, bytes */
	size_t max_buffered;       /* input + output buffered for all connections */
	int64_t frame_timeout_ns;  /* a started frame must complete within it; 0: none */
	int64_t idle_timeout_ns;   /* no request, no subscription: close; 0: none */
	int64_t query_timeout_ns;  /* 0: none */
	unsigned query_threads;    /* worker threads for statements */
	unsigned query_helpers;    /* threads a statement may share its groups with */
	int64_t maintenance_ns;    /* period of retention and idle sealing */
	const char *auth_file;     /* NULL: no authentication, everything allowed */
	const char *tls_cert;      /* with tls_key: the TCP listener speaks TLS only */
	const char *tls_key;
} vg_server_config_t;

void vg_server_config_init(vg_server_config_t *config);

/* Binds, listens and starts the writer and worker threads.  `store` is
 * borrowed and must outlive the server.  On error returns the code and a
 * message in err naming the address or resource. */
int vg_server_new(const vg_server_config_t *config, vg_store_t *store, vg_server_t **out,
		  char *err, size_t errlen);

/* Runs until stopped; returns 0 after a clean shutdown. */
int vg_server_run(vg_server_t *server);

/* Asks the loop to shut down (async-signal-unsafe; from any thread). */
void vg_server_stop(vg_server_t *server);

/* True when `listen` ("host:port", host possibly [v6]) names a loopback
 * address only: 127.0.0.0/8, ::1 or "localhost".  Other names count as
 * not loopback, whatever they resolve to. */
bool vg_server_listen_is_loopback(const char *listen);

/* The TCP port actually bound (useful with port 0), or 0. */
int vg_server_port(const vg_server_t *server);

void vg_server_free(vg_server_t *server);

#endif
