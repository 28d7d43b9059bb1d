/*
 * A real Kafka-protocol endpoint for the test suite: librdkafka's in-process
 * mock cluster (librdkafka-dev, <librdkafka/rdkafka_mock.h>) kept alive in a
 * tiny process. Driven by test/support/kafka-broker.ts.
 *
 *   mock-broker [brokers] [topic:partitions ...]
 *
 * Prints one line `bootstrap=127.0.0.1:port,...` once the brokers listen, then
 * reads commands from stdin, one per line, answering `ok` or `error ...`:
 *   down <brokerId>   broker closes its connections and refuses new ones
 *   up <brokerId>     broker serves again
 * Exits at stdin EOF (the spawning test process is gone, even if it was
 * SIGKILLed, so the broker can never outlive it) or on SIGTERM/SIGINT.
 *
 * The mock brokers bind 127.0.0.1 on ephemeral ports (librdkafka 2.0.2,
 * rd_kafka_mock_broker_new: INADDR_LOOPBACK, port 0), nothing to configure.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static volatile sig_atomic_t stopping = 0;

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

int main(int argc, char **argv) {
  char errstr[512];
  int brokers = argc > 1 ? atoi(argv[1]) : 1;
  if (brokers < 1) brokers = 1;

  /* No SA_RESTART: a signal interrupts the blocking read of stdin below, so
   * the loop ends and the cluster is torn down instead of being killed
   * mid-write. */
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  /* A mock cluster is owned by a client handle (its threads run the brokers'
   * event loop). The producer itself never talks to anything. */
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)); /* errors only, on stderr */
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (rk == NULL) {
    fprintf(stderr, "rd_kafka_new: %s\n", errstr);
    return 1;
  }
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
  if (mc == NULL) {
    fprintf(stderr, "rd_kafka_mock_cluster_new failed\n");
    return 1;
  }

  /* Topics the brokers would otherwise auto-create with 4 partitions on the
   * first metadata request; the mock has no CreateTopics handler. */
  for (int i = 2; i < argc; i++) {
    char *colon = strrchr(argv[i], ':');
    int partitions = colon != NULL ? atoi(colon + 1) : 0;
    if (colon == NULL || partitions < 1) {
      fprintf(stderr, "bad topic argument %s, want name:partitions\n", argv[i]);
      return 2;
    }
    *colon = '\0';
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, argv[i], partitions, brokers < 3 ? brokers : 3);
    if (err) {
      fprintf(stderr, "topic %s: %s\n", argv[i], rd_kafka_err2str(err));
      return 2;
    }
  }

  printf("bootstrap=%s\n", rd_kafka_mock_cluster_bootstraps(mc));
  fflush(stdout);

  char line[256];
  while (!stopping && fgets(line, sizeof(line), stdin) != NULL) {
    char cmd[16];
    int id;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__INVALID_ARG;
    if (sscanf(line, "%15s %d", cmd, &id) == 2) {
      if (strcmp(cmd, "down") == 0) err = rd_kafka_mock_broker_set_down(mc, id);
      else if (strcmp(cmd, "up") == 0) err = rd_kafka_mock_broker_set_up(mc, id);
    }
    if (err) printf("error %s\n", rd_kafka_err2str(err));
    else printf("ok\n");
    fflush(stdout);
  }

  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
