/*
 * main.c — vigild: command-line flags, the store, the server, the exit.
 *
 *   vigild [--data DIR] [--listen HOST:PORT] [--unix PATH] [--sync full|none]
 *          [--retention DUR] [--max-connections N] [--max-frame BYTES]
 *          [--max-output BYTES] [--max-buffered BYTES] [--frame-timeout DUR]
 *          [--idle-timeout DUR] [--query-timeout DUR] [--log-level LEVEL]
 *          [--auth-file FILE] [--tls-cert FILE --tls-key FILE] [--insecure]
 *
 * At start the soft limit on open files is raised to the hard limit, so
 * that --max-connections is not cut short by a default of 1024
 * descriptors; the effective value is logged, with a warning when it is
 * below what --max-connections needs.
 * Exit status: 0 after a clean shutdown, 1 when the store, the auth file,
 * the certificate or the listeners cannot be set up, 2 for a usage error
 * (including a non-loopback --listen without --auth-file or --insecure).
 */
#include "log.h"
#include "server.h"
#include "vg_duration.h"
#include "vg_proto.h"
#include "vg_error.h"
#include "vg_store.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void usage(FILE *out)
{
	fprintf(out,
		"usage: vigild [options]\n\n"
		"  --data DIR             data directory (default ./vigil-data)\n"
		"  --listen HOST:PORT     TCP address (default 127.0.0.1:8445; '' for none)\n"
		"  --unix PATH            also listen on a Unix socket\n"
		"  --sync full|none       fsync every commit (full, default) or leave it to the OS\n"
		"  --retention DUR|INF    global retention, e.g. 30d (default INF)\n"
		"  --max-connections N    (default 1024)\n"
		"  --max-frame BYTES      largest request frame (default %u)\n"
		"  --max-output BYTES     buffered output per connection (default 64 MiB)\n"
		"  --max-buffered BYTES   input + output buffered for all connections (default 1 GiB)\n"
		"  --frame-timeout DUR    a started frame must complete within it (default 30s; 0s: none)\n"
		"  --idle-timeout DUR     close connections with no request and nothing open\n"
		"                         (default 10m; 0s: none)\n"
		"  --query-timeout DUR    server-side limit per statement (default 60s; 0s: none)\n"
		"  --log-level LEVEL      error|warn|info|debug (default info)\n"
		"  --auth-file FILE       tokens and roles; without it every client may do "
		"everything\n"
		"  --tls-cert FILE        PEM certificate chain: the TCP listener speaks TLS only\n"
		"  --tls-key FILE         PEM private key of --tls-cert\n"
		"  --insecure             allow a non-loopback --listen without --auth-file\n",
		16u << 20);
}

static int parse_size(const char *s, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v == 0)
		return -1;
	*out = (size_t)v;
	return 0;
}

static int parse_duration_arg(const char *flag, const char *s, int64_t *ns, bool allow_inf)
{
	if (allow_inf && (strcmp(s, "INF") == 0 || strcmp(s, "inf") == 0)) {
		*ns = 0;
		return 0;
	}
	if (vg_duration_parse(s, strlen(s), ns) == 0)
		return 0;
	fprintf(stderr, "vigild: %s %s: expected a duration like 90s, 15m, 30d%s\n", flag, s,
		allow_inf ? " or INF" : "");
	return -1;
}

/* Descriptors beyond the connections: listeners, the store, the log. */
#define VG_FD_RESERVE 64

/* Raises the soft RLIMIT_NOFILE to the hard limit and logs the result. */
static void raise_fd_limit(unsigned max_connections)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		vg_log(VG_LOG_WARN, "cannot read the open files limit: %s", strerror(errno));
		return;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t before = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			vg_log(VG_LOG_WARN, "cannot raise the open files limit from %llu: %s",
			       (unsigned long long)before, strerror(errno));
			getrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	vg_log(VG_LOG_INFO, "open files limit %llu", (unsigned long long)rl.rlim_cur);
	if (rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)max_connections + VG_FD_RESERVE)
		vg_log(VG_LOG_WARN,
		       "open files limit %llu is below --max-connections %u + %d: connections "
		       "past it will fail to be accepted",
		       (unsigned long long)rl.rlim_cur, max_connections, VG_FD_RESERVE);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"data", required_argument, NULL, 'd'},
		{"listen", required_argument, NULL, 'l'},
		{"unix", required_argument, NULL, 'u'},
		{"sync", required_argument, NULL, 's'},
		{"retention", required_argument, NULL, 'r'},
		{"max-connections", required_argument, NULL, 'c'},
		{"max-frame", required_argument, NULL, 'f'},
		{"max-output", required_argument, NULL, 'o'},
		{"query-timeout", required_argument, NULL, 't'},
		{"max-buffered", required_argument, NULL, 'b'},
		{"frame-timeout", required_argument, NULL, 'F'},
		{"idle-timeout", required_argument, NULL, 'I'},
		{"log-level", required_argument, NULL, 'v'},
		{"auth-file", required_argument, NULL, 'a'},
		{"tls-cert", required_argument, NULL, 'C'},
		{"tls-key", required_argument, NULL, 'K'},
		{"insecure", no_argument, NULL, 'S'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	vg_server_config_t config;
	vg_server_config_init(&config);
	vg_store_options_t store_opts;
	vg_store_options_init(&store_opts);
	const char *data = "./vigil-data";
	int64_t retention = -1;
	bool insecure = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		size_t n;
		vg_log_level_t level;
		switch (opt) {
		case 'd':
			data = optarg;
			break;
		case 'l':
			config.listen = optarg;
			break;
		case 'u':
			config.unix_path = optarg;
			break;
		case 's':
			if (strcmp(optarg, "full") && strcmp(optarg, "none")) {
				fprintf(stderr, "vigild: --sync %s: expected full or none\n", optarg);
				return 2;
			}
			store_opts.sync = strcmp(optarg, "full") == 0;
			break;
		case 'r':
			if (parse_duration_arg("--retention", optarg, &retention, true))
				return 2;
			break;
		case 'c':
			if (parse_size(optarg, &n) || n > 1000000) {
				fprintf(stderr, "vigild: --max-connections %s: expected 1..1000000\n", optarg);
				return 2;
			}
			config.max_connections = (unsigned)n;
			break;
		case 'f':
			if (parse_size(optarg, &n) || n < 1024 || n > (1u << 30)) {
				fprintf(stderr, "vigild: --max-frame %s: expected 1024..1073741824\n", optarg);
				return 2;
			}
			config.max_frame = n;
			break;
		case 'o':
			if (parse_size(optarg, &n) || n < 65536) {
				fprintf(stderr, "vigild: --max-output %s: expected at least 65536\n", optarg);
				return 2;
			}
			config.max_output = n;
			break;
		case 'b':
			if (parse_size(optarg, &n) || n < (1u << 20)) {
				fprintf(stderr, "vigild: --max-buffered %s: expected at least 1048576\n",
					optarg);
				return 2;
			}
			config.max_buffered = n;
			break;
		case 'F':
			if (parse_duration_arg("--frame-timeout", optarg, &config.frame_timeout_ns, false))
				return 2;
			break;
		case 'I':
			if (parse_duration_arg("--idle-timeout", optarg, &config.idle_timeout_ns, false))
				return 2;
			break;
		case 't':
			if (parse_duration_arg("--query-timeout", optarg, &config.query_timeout_ns, false))
				return 2;
			break;
		case 'v':
			if (vg_log_level_parse(optarg, &level)) {
				fprintf(stderr, "vigild: --log-level %s: expected error, warn, info or debug\n",
					optarg);
				return 2;
			}
			vg_log_set_level(level);
			break;
		case 'a':
			config.auth_file = optarg;
			break;
		case 'C':
			config.tls_cert = optarg;
			break;
		case 'K':
			config.tls_key = optarg;
			break;
		case 'S':
			insecure = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "vigild: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!config.tls_cert != !config.tls_key) {
		fprintf(stderr, "vigild: TLS needs both --tls-cert and --tls-key\n");
		return 2;
	}
	bool exposed = config.listen && *config.listen &&
		       !vg_server_listen_is_loopback(config.listen);
	if (exposed && !config.auth_file && !insecure) {
		fprintf(stderr,
			"vigild: refusing to listen on %s without authentication: anyone who can "
			"reach that address could read, change and delete every series.\n"
			"Give --auth-file FILE (tokens with roles; see README, Security), or "
			"--insecure if only trusted hosts can reach it, or listen on a loopback "
			"address (127.0.0.1, ::1, localhost).\n",
			config.listen);
		return 2;
	}
	if (exposed && !config.auth_file)
		vg_log(VG_LOG_WARN, "--insecure: listening on %s without authentication",
		       config.listen);
	else if (exposed && !config.tls_cert)
		vg_log(VG_LOG_WARN,
		       "listening on %s without TLS: tokens and data cross the network in "
		       "clear text (--tls-cert, --tls-key)",
		       config.listen);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(config.max_connections);
	/* Cursors and result blocks allocate 64 KiB+ buffers per statement:
	 * keep freed memory in the process instead of unmapping it and
	 * faulting it back in on the next query (2-3x on decode-heavy
	 * queries). */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);

	vg_store_t *store;
	char err[512] = "";
	int rc = vg_store_open(data, &store_opts, &store, err, sizeof err);
	if (rc) {
		vg_log(VG_LOG_ERROR, "%s", err[0] ? err : vg_strerror(rc));
		return 1;
	}
	if (retention >= 0) {
		vg_wtxn_t *txn;
		rc = vg_store_write_begin(store, &txn);
		rc = rc ? rc : vg_wtxn_set_retention(txn, (vg_str_t){NULL, 0}, retention);
		rc = rc ? rc : vg_wtxn_commit(txn);
		if (rc) {
			vg_log(VG_LOG_ERROR, "cannot set the retention: %s", vg_strerror(rc));
			vg_store_close(store);
			return 1;
		}
	}
	vg_server_t *server;
	rc = vg_server_new(&config, store, &server, err, sizeof err);
	if (rc) {
		vg_log(VG_LOG_ERROR, "%s", err);
		vg_store_close(store);
		return 1;
	}
	vg_log(VG_LOG_INFO, "vigild %s: data in %s, sync %s", VIGIL_VERSION, data,
	       store_opts.sync ? "full" : "none");
	rc = vg_server_run(server);
	vg_server_free(server);
	vg_store_close(store);
	vg_log(VG_LOG_INFO, "stopped; store closed");
	return rc ? 1 : 0;
}
