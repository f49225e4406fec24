/*
 * zcfake: a capture-only fake ALSA card, an alsa-lib external I/O ("ioplug") plugin, for
 * zerocast's tests on machines without sound hardware (tests/e2e_alsa_fake.rs builds it).
 *
 * Frames come at the configured rate by CLOCK_MONOTONIC; the poll descriptor is a timerfd that
 * fires once a period, or once every few periods when the reader's `avail_min` asks for that
 * many (as the kernel wakes a reader of a real card only when `avail_min` frames are there).
 * The data is a 440 Hz sine at half scale (or silence with `silence 1`), copied from a table of
 * one second computed once, so that the card itself costs next to nothing in the benchmark
 * that uses it as a capture device without libpulse (ci/bench.sh).
 *
 * Options (all optional):
 *   rates         "44100" or "44100,48000" (or an integer): the only rates the card allows
 *   channels_min  channels_max   (default 1..2)
 *   open_errno    open fails with -open_errno (e.g. 16 EBUSY, 13 EACCES)
 *   xrun_after_ms after this long since the first start, report one overrun (pointer -EPIPE)
 *   silence       1: deliver zeros instead of the sine
 */
/* A shared object: SND_PCM_PLUGIN_SYMBOL then exports a version symbol instead of linking into
 * a static alsa-lib's symbol table (snd_dlsym_start); libtool builds pass -DPIC for this. */
#ifndef PIC
#define PIC
#endif
#include <alsa/asoundlib.h>
#include <alsa/pcm_external.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_RATES 16

struct zcfake {
	snd_pcm_ioplug_t io;
	int timer_fd;
	uint64_t started_ns;       /* CLOCK_MONOTONIC at the last start */
	uint64_t first_start_ns;   /* at the first start, for xrun_after_ms */
	long xrun_after_ms;
	int xrun_done;
	int silence;
	uint64_t phase_frames;     /* frames delivered so far, for a continuous sine */
	snd_pcm_uframes_t avail_min; /* from sw_params: the timer fires per whole periods >= it */
	int16_t *table;            /* one second of the sine at table_rate */
	unsigned int table_rate;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int zc_start(snd_pcm_ioplug_t *io)
{
	struct zcfake *zc = io->private_data;
	snd_pcm_uframes_t periods = (zc->avail_min + io->period_size - 1) / io->period_size;
	uint64_t period_ns = (uint64_t)io->period_size * (periods ? periods : 1) * 1000000000u /
			     io->rate;
	struct itimerspec its = {
		/* 1 ms after the period boundary, so the pointer has surely reached it. */
		.it_value = { .tv_sec = (period_ns + 1000000) / 1000000000u,
			      .tv_nsec = (period_ns + 1000000) % 1000000000u },
		.it_interval = { .tv_sec = period_ns / 1000000000u,
				 .tv_nsec = period_ns % 1000000000u },
	};
	zc->started_ns = now_ns();
	if (!zc->first_start_ns)
		zc->first_start_ns = zc->started_ns;
	if (timerfd_settime(zc->timer_fd, 0, &its, NULL) < 0)
		return -errno;
	return 0;
}

static int zc_stop(snd_pcm_ioplug_t *io)
{
	struct zcfake *zc = io->private_data;
	struct itimerspec off = { 0 };
	timerfd_settime(zc->timer_fd, 0, &off, NULL);
	return 0;
}

/* Frames captured since start, as a position in the ring buffer; -EPIPE once for the xrun. */
static snd_pcm_sframes_t zc_pointer(snd_pcm_ioplug_t *io)
{
	struct zcfake *zc = io->private_data;
	uint64_t now = now_ns();
	uint64_t frames;
	if (io->state != SND_PCM_STATE_RUNNING)
		return 0;
	if (zc->xrun_after_ms > 0 && !zc->xrun_done &&
	    now - zc->first_start_ns >= (uint64_t)zc->xrun_after_ms * 1000000u) {
		zc->xrun_done = 1;
		return -EPIPE;
	}
	frames = (now - zc->started_ns) * io->rate / 1000000000u;
	return (snd_pcm_sframes_t)(frames % io->buffer_size);
}

static int zc_sw_params(snd_pcm_ioplug_t *io, snd_pcm_sw_params_t *params)
{
	struct zcfake *zc = io->private_data;
	return snd_pcm_sw_params_get_avail_min(params, &zc->avail_min);
}

static snd_pcm_sframes_t zc_transfer(snd_pcm_ioplug_t *io, const snd_pcm_channel_area_t *areas,
				     snd_pcm_uframes_t offset, snd_pcm_uframes_t size)
{
	struct zcfake *zc = io->private_data;
	snd_pcm_uframes_t i;
	unsigned int c;
	uint64_t expirations;
	if (zc->table_rate != io->rate) {
		int16_t *t = realloc(zc->table, io->rate * sizeof *t);
		if (!t)
			return -ENOMEM;
		for (i = 0; i < io->rate; i++)
			t[i] = zc->silence ? 0
					   : (int16_t)(16384.0 * sin(2.0 * M_PI * 440.0 * i / io->rate));
		zc->table = t;
		zc->table_rate = io->rate;
	}
	/* Reading the timerfd re-arms it, so taking the data clears the readiness as on a real
	 * card: a reader registered edge-triggered is woken again at the next tick, without having
	 * to call snd_pcm_poll_descriptors_revents. EAGAIN only means no tick is pending. */
	if (read(zc->timer_fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
		return -errno;
	for (i = 0; i < size; i++) {
		int16_t v = zc->table[(zc->phase_frames + i) % io->rate];
		for (c = 0; c < io->channels; c++) {
			const snd_pcm_channel_area_t *a = &areas[c];
			char *p = (char *)a->addr + (a->first + (offset + i) * a->step) / 8;
			memcpy(p, &v, sizeof v);
		}
	}
	zc->phase_frames += size;
	return (snd_pcm_sframes_t)size;
}

/* Clears the timer and reports readable. */
static int zc_poll_revents(snd_pcm_ioplug_t *io, struct pollfd *pfd, unsigned int nfds,
			   unsigned short *revents)
{
	struct zcfake *zc = io->private_data;
	uint64_t expirations;
	(void)nfds;
	if (read(zc->timer_fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
		return -errno;
	*revents = pfd[0].revents & POLLIN;
	return 0;
}

static int zc_close(snd_pcm_ioplug_t *io)
{
	struct zcfake *zc = io->private_data;
	close(zc->timer_fd);
	free(zc->table);
	free(zc);
	return 0;
}

static const snd_pcm_ioplug_callback_t zc_callback = {
	.start = zc_start,
	.stop = zc_stop,
	.pointer = zc_pointer,
	.transfer = zc_transfer,
	.poll_revents = zc_poll_revents,
	.sw_params = zc_sw_params,
	.close = zc_close,
};

/* Reads `rates` as an integer or a string like "44100,48000". Returns the count or -EINVAL. */
static int parse_rates(snd_config_t *n, unsigned int *rates)
{
	long l;
	const char *s;
	char *end;
	int count = 0;
	if (snd_config_get_integer(n, &l) == 0) {
		rates[0] = (unsigned int)l;
		return 1;
	}
	if (snd_config_get_string(n, &s) < 0)
		return -EINVAL;
	while (*s && count < MAX_RATES) {
		unsigned long r = strtoul(s, &end, 10);
		if (end == s)
			return -EINVAL;
		rates[count++] = (unsigned int)r;
		s = end;
		while (*s == ',' || *s == ' ')
			s++;
	}
	return count > 0 ? count : -EINVAL;
}

SND_PCM_PLUGIN_DEFINE_FUNC(zcfake)
{
	snd_config_iterator_t i, next;
	unsigned int rates[MAX_RATES];
	int nrates = 0;
	long channels_min = 1, channels_max = 2, open_errno = 0, xrun_after_ms = 0, silence = 0;
	static const unsigned int access[] = { SND_PCM_ACCESS_RW_INTERLEAVED,
					       SND_PCM_ACCESS_MMAP_INTERLEAVED };
	static const unsigned int formats[] = { SND_PCM_FORMAT_S16_LE };
	struct zcfake *zc;
	int err;

	(void)root;
	snd_config_for_each(i, next, conf) {
		snd_config_t *n = snd_config_iterator_entry(i);
		const char *id;
		if (snd_config_get_id(n, &id) < 0)
			continue;
		if (!strcmp(id, "comment") || !strcmp(id, "type") || !strcmp(id, "hint"))
			continue;
		if (!strcmp(id, "rates")) {
			nrates = parse_rates(n, rates);
			if (nrates < 0) {
				SNDERR("zcfake: bad rates");
				return nrates;
			}
			continue;
		}
		long *target = !strcmp(id, "channels_min")    ? &channels_min
			       : !strcmp(id, "channels_max")  ? &channels_max
			       : !strcmp(id, "open_errno")    ? &open_errno
			       : !strcmp(id, "xrun_after_ms") ? &xrun_after_ms
			       : !strcmp(id, "silence")       ? &silence
							      : NULL;
		if (!target || snd_config_get_integer(n, target) < 0) {
			SNDERR("zcfake: unknown or non-integer option %s", id);
			return -EINVAL;
		}
	}
	if (stream != SND_PCM_STREAM_CAPTURE)
		return -EINVAL;
	if (open_errno)
		return -(int)open_errno;

	zc = calloc(1, sizeof *zc);
	if (!zc)
		return -ENOMEM;
	zc->xrun_after_ms = xrun_after_ms;
	zc->silence = (int)silence;
	zc->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (zc->timer_fd < 0) {
		err = -errno;
		free(zc);
		return err;
	}
	zc->io.version = SND_PCM_IOPLUG_VERSION;
	zc->io.name = "zerocast fake capture card";
	zc->io.callback = &zc_callback;
	zc->io.private_data = zc;
	zc->io.poll_fd = zc->timer_fd;
	zc->io.poll_events = POLLIN;
	zc->io.mmap_rw = 0;
	err = snd_pcm_ioplug_create(&zc->io, name, stream, mode);
	if (err < 0) {
		close(zc->timer_fd);
		free(zc);
		return err;
	}
	if ((err = snd_pcm_ioplug_set_param_list(&zc->io, SND_PCM_IOPLUG_HW_ACCESS, 2, access)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_list(&zc->io, SND_PCM_IOPLUG_HW_FORMAT, 1, formats)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_minmax(&zc->io, SND_PCM_IOPLUG_HW_CHANNELS,
						   (unsigned int)channels_min,
						   (unsigned int)channels_max)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_minmax(&zc->io, SND_PCM_IOPLUG_HW_PERIOD_BYTES, 64,
						   1 << 20)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_minmax(&zc->io, SND_PCM_IOPLUG_HW_BUFFER_BYTES, 128,
						   1 << 22)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_minmax(&zc->io, SND_PCM_IOPLUG_HW_PERIODS, 2, 1024)) < 0 ||
	    (err = nrates > 0 ? snd_pcm_ioplug_set_param_list(&zc->io, SND_PCM_IOPLUG_HW_RATE,
								(unsigned int)nrates, rates)
			      : snd_pcm_ioplug_set_param_minmax(&zc->io, SND_PCM_IOPLUG_HW_RATE,
								8000, 192000)) < 0) {
		snd_pcm_ioplug_delete(&zc->io);
		return err;
	}
	*pcmp = zc->io.pcm;
	return 0;
}
SND_PCM_PLUGIN_SYMBOL(zcfake);
