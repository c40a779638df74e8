/*
 * cli_demo.c — `vigil demo [--patients N] [--rate HZ] [--duration S]`: a
 * hospital ward streaming vital signs live into the running server, so
 * that `vigil subscribe` has something to show.
 *
 * The ward is BENCH.md's `vitals` dataset played in real time: measurement
 * `vitals`, tags patient (p000, p001, ...), ward (w01: 50 patients a ward)
 * and bed (b01..b50), fields heart_rate (integer bpm), spo2 (integer %),
 * resp_rate (integer), temp (°C, 1 decimal), systolic and diastolic
 * (integer mmHg), every 1/HZ s, stamped with the wall clock.
 *
 * Each vital is a mean-reverting random walk (each step moves a fraction
 * of the way back to the patient's own baseline, plus Gaussian noise,
 * clamped to a plausible range), as in bench/dataset.c but self-contained
 * and not reproducible: the demo is meant to look alive, not to be
 * measured.  Tachycardia episodes — heart_rate above 120 for 20 to 90 s,
 * with a little more stress on the other vitals — start at random, about
 * once every 20 minutes per patient; the first one starts within the first
 * 10 seconds, so a demo shows an alert at once.
 *
 * One write (one request, acknowledged after the commit) per tick; a line
 * per second says what was written and who is in tachycardia.  The
 * timeline never tries to catch up: a tick that comes late is simply the
 * next one.  Ctrl-C (or --duration) ends it with a summary, exit 0.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PATIENTS_PER_WARD 50
#define MAX_PATIENTS 100000
#define EPISODE_MIN_S 20
#define EPISODE_MAX_S 90
#define EPISODE_MEAN_GAP_S 1200.0 /* per patient */
#define FIRST_EPISODE_S 3         /* the first one starts 3..8 s in */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* ---- randomness ---------------------------------------------------------------- */

typedef struct rng {
	uint64_t s;
} rng_t;

static uint64_t rng_next(rng_t *r)
{
	/* splitmix64: one add and a mix per draw, plenty for a demo. */
	uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_uniform(rng_t *r)
{
	return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Standard normal (Box-Muller). */
static double rng_normal(rng_t *r)
{
	double u = 1.0 - rng_uniform(r), v = rng_uniform(r);
	return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* Exponential with the given mean. */
static double rng_exponential(rng_t *r, double mean)
{
	return -mean * log(1.0 - rng_uniform(r));
}

/* ---- the ward ------------------------------------------------------------------ */

/* One mean-reverting walk; pull and sd are per second. */
typedef struct walk {
	double x, base, pull, sd, lo, hi;
} walk_t;

static double walk_step(walk_t *w, rng_t *r, double target, double dt)
{
	double x = w->x + w->pull * dt * (target - w->x) + w->sd * sqrt(dt) * rng_normal(r);
	w->x = x < w->lo ? w->lo : x > w->hi ? w->hi : x;
	return w->x;
}

enum { HR, SPO2, RESP, TEMP, SYS, DIA, NFIELDS };
static const char *const field_names[NFIELDS] = {
    "heart_rate", "spo2", "resp_rate", "temp", "systolic", "diastolic",
};

typedef struct patient {
	char name[24], ward[24], bed[24];
	walk_t vital[NFIELDS];
	walk_t tachy;         /* heart rate during an episode */
	double episode_start; /* seconds since the demo began */
	double episode_end;
	double peak;
} patient_t;

static void schedule_episode(patient_t *p, rng_t *r, double after)
{
	p->episode_start = after + rng_exponential(r, EPISODE_MEAN_GAP_S);
	p->episode_end =
	    p->episode_start + EPISODE_MIN_S + rng_uniform(r) * (EPISODE_MAX_S - EPISODE_MIN_S);
	p->peak = 125 + 30 * rng_uniform(r);
}

static void patient_init(patient_t *p, size_t i, rng_t *r)
{
	snprintf(p->name, sizeof p->name, "p%03zu", i);
	snprintf(p->ward, sizeof p->ward, "w%02zu", i / PATIENTS_PER_WARD + 1);
	snprintf(p->bed, sizeof p->bed, "b%02zu", i % PATIENTS_PER_WARD + 1);
	double hr = 60 + 30 * rng_uniform(r), spo2 = 95 + 4 * rng_uniform(r);
	double resp = 14 + 4 * rng_uniform(r), temp = 36.4 + rng_uniform(r);
	double sys = 105 + 35 * rng_uniform(r), dia = 65 + 20 * rng_uniform(r);
	p->vital[HR] = (walk_t){hr, hr, 0.05, 0.8, 45, 115};
	p->vital[SPO2] = (walk_t){spo2, spo2, 0.05, 0.3, 90, 100};
	p->vital[RESP] = (walk_t){resp, resp, 0.05, 0.3, 10, 24};
	p->vital[TEMP] = (walk_t){temp, temp, 0.002, 0.004, 36.0, 38.5};
	p->vital[SYS] = (walk_t){sys, sys, 0.05, 1.0, 85, 180};
	p->vital[DIA] = (walk_t){dia, dia, 0.05, 0.8, 45, 110};
	p->tachy = (walk_t){0, 0, 0.1, 1.5, 121, 190};
	schedule_episode(p, r, 10);
	if (i == 0) { /* something to see at once */
		p->episode_start = FIRST_EPISODE_S + 5 * rng_uniform(r);
		p->episode_end = p->episode_start + EPISODE_MIN_S +
		                 rng_uniform(r) * (EPISODE_MAX_S - EPISODE_MIN_S);
	}
}

/* Advances a patient to time t (s since the start) by dt and fills v[]. */
static void patient_step(patient_t *p, rng_t *r, double t, double dt, double v[NFIELDS])
{
	if (t >= p->episode_end)
		schedule_episode(p, r, p->episode_end + 60);
	bool episode = t >= p->episode_start && t < p->episode_end;
	if (episode && p->tachy.x < p->tachy.lo)
		p->tachy.x = p->peak; /* the episode starts */
	if (!episode)
		p->tachy.x = 0;
	double stress = episode ? 1 : 0;
	double hr = walk_step(&p->vital[HR], r, p->vital[HR].base, dt);
	if (episode)
		hr = walk_step(&p->tachy, r, p->peak, dt);
	v[HR] = round(hr);
	v[SPO2] = round(walk_step(&p->vital[SPO2], r, p->vital[SPO2].base - 2 * stress, dt));
	v[RESP] = round(walk_step(&p->vital[RESP], r, p->vital[RESP].base + 3 * stress, dt));
	v[TEMP] = round(walk_step(&p->vital[TEMP], r, p->vital[TEMP].base, dt) * 10) / 10;
	v[SYS] = round(walk_step(&p->vital[SYS], r, p->vital[SYS].base + 10 * stress, dt));
	double dia = round(walk_step(&p->vital[DIA], r, p->vital[DIA].base + 5 * stress, dt));
	v[DIA] = dia < v[SYS] - 20 ? dia : v[SYS] - 20;
}

/* ---- the command --------------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out, "usage: vigil demo [--patients N] [--rate HZ] [--duration S]\n"
	             "  --patients  patients in the ward (default 50)\n"
	             "  --rate      samples per second and patient (default 1)\n"
	             "  --duration  seconds to run (default: until Ctrl-C)\n");
}

static bool parse_number(const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return false;
	*out = v;
	return true;
}

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Sleeps until the monotonic time `ns`; a signal ends it early. */
static void sleep_until(int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* Adds one tick of every patient to the batch. */
static int add_tick(vg_batch_t *b, patient_t *ward, size_t n, rng_t *r, double t, double dt,
                    int64_t now_ns)
{
	for (size_t i = 0; i < n; i++) {
		patient_t *p = &ward[i];
		const vg_tag_t tags[] = {{"patient", p->name}, {"ward", p->ward}, {"bed", p->bed}};
		double v[NFIELDS];
		patient_step(p, r, t, dt, v);
		for (int f = 0; f < NFIELDS; f++) {
			int rc = vg_batch_add(b, "vitals", tags, 3, field_names[f], now_ns, v[f]);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* The status line of one second. */
static void print_status(const patient_t *ward, size_t n, uint64_t points, uint64_t total)
{
	char clock[16];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(clock, sizeof clock, "%H:%M:%S", &tm);
	printf("%s  wrote %" PRIu64 " points (total %" PRIu64 ")", clock, points, total);
	size_t shown = 0, in_episode = 0;
	for (size_t i = 0; i < n; i++) {
		if (ward[i].tachy.x < ward[i].tachy.lo)
			continue;
		if (in_episode++ == 0)
			printf("  tachycardia:");
		if (shown < 5) {
			printf(" %s %.0f bpm", ward[i].name, round(ward[i].tachy.x));
			shown++;
		}
	}
	if (in_episode > shown)
		printf(" and %zu more", in_episode - shown);
	putchar('\n');
	fflush(stdout);
}

int cli_demo_main(const cli_global_t *g, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"patients", required_argument, NULL, 'p'},
	    {"rate", required_argument, NULL, 'r'},
	    {"duration", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	double patients = 50, rate = 1, duration = 0;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			if (!parse_number(optarg, 1, MAX_PATIENTS, &patients) ||
			    patients != floor(patients)) {
				fprintf(stderr, "vigil: --patients %s: expected 1..%d\n", optarg,
				        MAX_PATIENTS);
				return CLI_USAGE;
			}
			break;
		case 'r':
			if (!parse_number(optarg, 0.01, 1000, &rate)) {
				fprintf(stderr, "vigil: --rate %s: expected 0.01..1000 (Hz)\n",
				        optarg);
				return CLI_USAGE;
			}
			break;
		case 'd':
			if (!parse_number(optarg, 0, 1e9, &duration)) {
				fprintf(stderr, "vigil: --duration %s: expected seconds\n", optarg);
				return CLI_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return CLI_USAGE;
	}
	size_t n = (size_t)patients;
	patient_t *ward = calloc(n, sizeof *ward);
	vg_batch_t *b = NULL;
	if (!ward || vg_batch_new(&b)) {
		fprintf(stderr, "vigil: out of memory\n");
		free(ward);
		return CLI_ERROR;
	}
	rng_t r = {(uint64_t)clock_ns(CLOCK_REALTIME)};
	for (size_t i = 0; i < n; i++)
		patient_init(&ward[i], i, &r);
	vg_client_t *c = cli_connect(g);
	if (!c) {
		vg_batch_free(b);
		free(ward);
		return CLI_ERROR;
	}
	printf("vigil demo: %zu patients in measurement 'vitals' (tags patient, ward, bed), "
	       "%g Hz, %s; Ctrl-C stops.\n"
	       "Watch the alarms in another terminal:\n"
	       "  vigil subscribe 'SELECT heart_rate FROM vitals WHERE heart_rate > 120 "
	       "GROUP BY patient'\n",
	       n, rate, duration > 0 ? "for a while" : "until stopped");
	fflush(stdout);

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	int status = CLI_OK;
	int64_t period = (int64_t)(1e9 / rate), start = clock_ns(CLOCK_MONOTONIC);
	int64_t next = start, next_status = start + 1000000000;
	uint64_t total = 0, second_points = 0;
	double t_prev = 0;
	while (!stop_requested) {
		int64_t now = clock_ns(CLOCK_MONOTONIC);
		if (now >= next_status) {
			print_status(ward, n, second_points, total);
			second_points = 0;
			next_status += 1000000000;
			if (next_status <= now)
				next_status = now + 1000000000;
		}
		double t = (double)(now - start) / 1e9;
		if (duration > 0 && t >= duration)
			break;
		vg_batch_clear(b);
		double dt = t - t_prev > 0 ? t - t_prev : 1 / rate;
		t_prev = t;
		int rc = add_tick(b, ward, n, &r, t, dt, clock_ns(CLOCK_REALTIME));
		if (!rc)
			rc = vg_client_write(c, b, NULL);
		if (rc) {
			fprintf(stderr, "error: %s\n",
			        rc == VG_ENOMEM ? "out of memory" : vg_client_errstr(c));
			status = CLI_ERROR;
			break;
		}
		/* A point here is one field value, as everywhere in Vigil. */
		second_points += vg_batch_points(b);
		total += vg_batch_points(b);
		now = clock_ns(CLOCK_MONOTONIC);
		next += period;
		if (next < now)
			next = now; /* late: never catch up in a burst */
		sleep_until(next);
	}
	double took = (double)(clock_ns(CLOCK_MONOTONIC) - start) / 1e9;
	printf("vigil demo: wrote %" PRIu64 " points in %.1f s\n", total, took);
	vg_client_close(c);
	vg_batch_free(b);
	free(ward);
	return status;
}
