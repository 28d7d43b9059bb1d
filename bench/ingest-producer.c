/*
 * The producer of bench/ingest-bench.ts part 2, in librdkafka (librdkafka-dev,
 * the library the test broker comes from). kafkajs took ~27 µs of CPU per
 * message here and could not offer 20k events/s on this box's 2 shared cores,
 * in the bench process or in one of its own; librdkafka takes a few µs.
 *
 *   ingest-producer <bootstrap> <topic> <templates> <rate> <seconds> <tick_ms>
 *
 * <templates>: the bench's pre-encoded messages, little-endian: u32 events,
 * u32 probes, then events + probes records of
 *   u16 key length, key, u32 value length, value, u32 timestamp offset, i32 behind ms
 * where the timestamp offset is where the Avro value's event-time varint
 * starts. At send time the event time (and the Kafka timestamp) becomes now
 * minus `behind ms` (the generator's out-of-order and late events).
 *
 * Prints `ready` once connected, then takes commands on stdin:
 *   warmup   sends probe 0 and waits for its ack, answers `warmed`
 *   go       runs the open-loop schedule: every tick_ms one burst of what
 *            `rate` owes by then (more than two ticks' worth behind is counted
 *            unsent instead), then the tick's probe (probes 1, 2, ...), and
 *            prints `probe <n> <epoch ms>` when it hands the probe to the
 *            client and `ack <n> <epoch ms>` when the broker acked it (acks 1);
 *            at the end `done <load ms> <produced> <acked> <unsent> <failed>`
 *            and exits.
 * Epoch ms carry microseconds: CLOCK_REALTIME is the clock the bench's
 * performance.timeOrigin + now() follows too.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <librdkafka/rdkafka.h>

typedef struct {
  const char *key;
  size_t key_len;
  const unsigned char *value;
  size_t value_len;
  size_t ts_offset;
  int32_t behind_ms;
} template_t;

static uint64_t acked = 0, failed = 0;

static double epoch_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Zigzag varint of an Avro long (non-negative ms timestamps: 6 bytes until 2039, as in the template). */
static void write_avro_long(unsigned char *at, int64_t value) {
  uint64_t zigzag = (uint64_t)value << 1;
  do {
    unsigned char byte = zigzag & 0x7f;
    zigzag >>= 7;
    if (zigzag) byte |= 0x80;
    *at++ = byte;
  } while (zigzag);
}

/* Probes carry their number + 1 as the message opaque; events carry NULL. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *message, void *opaque) {
  (void)rk;
  (void)opaque;
  if (message->err) {
    failed++;
    fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(message->err));
    return;
  }
  if (message->_private != NULL) printf("ack %lu %.3f\n", (unsigned long)((uintptr_t)message->_private - 1), epoch_ms());
  else acked++;
}

static void send_one(rd_kafka_t *rk, const char *topic, const template_t *t, unsigned char *scratch, int64_t now_ms, void *opaque) {
  int64_t event_ms = now_ms - t->behind_ms;
  memcpy(scratch, t->value, t->value_len);
  write_avro_long(scratch + t->ts_offset, event_ms);
  for (;;) {
    rd_kafka_resp_err_t err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(t->key, t->key_len), RD_KAFKA_V_VALUE(scratch, t->value_len),
                                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(event_ms), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      fprintf(stderr, "produce failed: %s\n", rd_kafka_err2str(err));
      exit(1);
    }
    rd_kafka_poll(rk, 5);
  }
}

static unsigned char *read_file(const char *path, size_t *size) {
  FILE *file = fopen(path, "rb");
  if (file == NULL) return NULL;
  fseek(file, 0, SEEK_END);
  *size = (size_t)ftell(file);
  fseek(file, 0, SEEK_SET);
  unsigned char *bytes = malloc(*size);
  if (fread(bytes, 1, *size, file) != *size) return NULL;
  fclose(file);
  return bytes;
}

static uint32_t u32_at(const unsigned char *at) { return at[0] | at[1] << 8 | at[2] << 16 | (uint32_t)at[3] << 24; }

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: ingest-producer <bootstrap> <topic> <templates> <rate> <seconds> <tick_ms>\n");
    return 2;
  }
  const char *topic = argv[2];
  double rate = atof(argv[4]), seconds = atof(argv[5]), tick_ms = atof(argv[6]);
  setvbuf(stdout, NULL, _IOLBF, 0);

  size_t size;
  unsigned char *bytes = read_file(argv[3], &size);
  if (bytes == NULL || size < 8) {
    fprintf(stderr, "cannot read %s\n", argv[3]);
    return 1;
  }
  uint32_t events = u32_at(bytes), probes = u32_at(bytes + 4);
  template_t *templates = calloc(events + probes, sizeof(template_t));
  size_t longest = 0;
  const unsigned char *at = bytes + 8;
  for (uint32_t index = 0; index < events + probes; index++) {
    template_t *t = &templates[index];
    t->key_len = at[0] | at[1] << 8;
    t->key = (const char *)at + 2;
    at += 2 + t->key_len;
    t->value_len = u32_at(at);
    t->value = at + 4;
    at += 4 + t->value_len;
    t->ts_offset = u32_at(at);
    t->behind_ms = (int32_t)u32_at(at + 4);
    at += 8;
    if (t->value_len > longest) longest = t->value_len;
  }
  unsigned char *scratch = malloc(longest);

  char errstr[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  const char *settings[][2] = {
      {"bootstrap.servers", argv[1]},
      {"acks", "1"},
      /* One burst per tick: sent as one request once it is all queued. */
      {"linger.ms", "5"},
      {"batch.num.messages", "100000"},
      {"batch.size", "16000000"},
      {"message.max.bytes", "16000000"},
      {"queue.buffering.max.messages", "2000000"},
      /* kafkajs's DefaultPartitioner (Java's murmur2), so keys land where they did before. */
      {"partitioner", "murmur2_random"},
      {"log_level", "3"},
  };
  for (size_t index = 0; index < sizeof(settings) / sizeof(settings[0]); index++) {
    if (rd_kafka_conf_set(conf, settings[index][0], settings[index][1], errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
      fprintf(stderr, "%s: %s\n", settings[index][0], errstr);
      return 1;
    }
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (rk == NULL) {
    fprintf(stderr, "rd_kafka_new: %s\n", errstr);
    return 1;
  }
  const struct rd_kafka_metadata *metadata;
  rd_kafka_topic_t *handle = rd_kafka_topic_new(rk, topic, NULL);
  if (rd_kafka_metadata(rk, 0, handle, &metadata, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    fprintf(stderr, "no metadata for %s\n", topic);
    return 1;
  }
  rd_kafka_metadata_destroy(metadata);
  rd_kafka_topic_destroy(handle);
  printf("ready\n");

  char line[64];
  while (fgets(line, sizeof(line), stdin) != NULL && strncmp(line, "go", 2) != 0) {
    if (strncmp(line, "warmup", 6) != 0) continue;
    send_one(rk, topic, &templates[events], scratch, (int64_t)epoch_ms(), (void *)(uintptr_t)1);
    rd_kafka_flush(rk, 10000);
    printf("warmed\n");
  }

  uint64_t produced = 0, unsent = 0;
  uint32_t probe = 1;
  double start = mono_ms(), end = start + seconds * 1e3;
  uint64_t most = (uint64_t)(2 * rate * tick_ms / 1e3 + 0.999);
  for (uint64_t tick = 1;; tick++) {
    double now = mono_ms();
    if (now >= end) break;
    double due = (now - start) / 1e3 * rate - (double)(produced + unsent);
    uint64_t owed = due > 0 ? (uint64_t)due : 0;
    if (owed > most) {
      unsent += owed - most;
      owed = most;
    }
    int64_t wall = (int64_t)epoch_ms();
    for (uint64_t index = 0; index < owed; index++) send_one(rk, topic, &templates[(produced + index) % events], scratch, wall, NULL);
    produced += owed;
    if (probe < probes) {
      printf("probe %u %.3f\n", probe, epoch_ms());
      send_one(rk, topic, &templates[events + probe], scratch, wall, (void *)(uintptr_t)(probe + 1));
      probe++;
    }
    rd_kafka_poll(rk, 0);
    double wait = start + tick * tick_ms - mono_ms();
    while (wait > 0) {
      rd_kafka_poll(rk, (int)(wait < 1 ? 1 : wait));
      wait = start + tick * tick_ms - mono_ms();
    }
  }
  rd_kafka_flush(rk, 30000);
  double load_ms = mono_ms() - start;
  printf("done %.1f %lu %lu %lu %lu\n", load_ms, (unsigned long)produced, (unsigned long)acked, (unsigned long)unsent, (unsigned long)failed);
  rd_kafka_destroy(rk);
  return 0;
}
