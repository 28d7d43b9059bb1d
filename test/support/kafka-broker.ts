import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PartitionAssigners, type ConsumerConfig, type PartitionAssigner } from 'kafkajs';

const source = fileURLToPath(new URL('./kafka-broker/mock-broker.c', import.meta.url));
const cacheRoot = fileURLToPath(new URL('../../node_modules/.cache/strata-mock-broker/', import.meta.url));
const mockHeader = '/usr/include/librdkafka/rdkafka_mock.h';
const gccArgs = ['-O1'];
const installHint = 'run scripts/ensure-test-deps.sh';

/**
 * The leader's assignment is held back a moment before its SyncGroup goes
 * out. The mock coordinator completes a generation as soon as the leader's
 * SyncGroup carries every member's assignment, even when a follower's
 * SyncGroup is still on its way; that follower then gets INVALID_REQUEST
 * ("request being malformed"), kafkajs crashes and restarts it, and the group
 * pays another full rebalance. Two members joining together hit that in 5
 * of 24 tries here with the stock assigner, 0 of 16 with this one. A real
 * broker waits for every member's sync, so the delay only shapes timing.
 * Same protocol name as the stock round robin, so members with and without
 * it mix.
 */
export const mockSafeRoundRobin: PartitionAssigner = (config) => {
  const assigner = PartitionAssigners.roundRobin(config);
  return {
    ...assigner,
    async assign(group) {
      await new Promise((resolve) => setTimeout(resolve, 150));
      return assigner.assign(group);
    },
  };
};

/**
 * kafkajs consumer settings that keep group joins and rebalances short and
 * reliable against this mock. Its group coordinator (librdkafka 2.0.2,
 * rdkafka_mock_cgrp.c) ignores rebalanceTimeout and works off the session
 * timeout instead; measured with kafkajs 2.2.4 on this machine:
 * - The first join of an empty group always waits a fixed 3 s for more
 *   members (its group.initial.rebalance.delay.ms). Consumers that join in
 *   that window are assigned together: start all of a group's consumers at
 *   once. A restarted consumer pays the same ~3 s.
 * - Every later rebalance (join, LeaveGroup on disconnect, session expiry)
 *   waits sessionTimeout - 1000 ms for members to rejoin: ~3 s here
 *   (~5 s with sessionTimeout 6000).
 * - sessionTimeout must not go below ~3000: a member waiting out the initial
 *   3 s delay gets no credit for it. With 2000 it was expired mid-join and its
 *   JoinGroup never answered (kafkajs waited out its 30 s requestTimeout);
 *   3000 joined in 6 of 6 tries but has no margin; 4000 does.
 * - A consumer that dies without leaving is noticed within sessionTimeout
 *   + 1 s (the coordinator checks once a second), then the rebalance above
 *   follows: ~7 s from SIGKILL to reassignment with these settings.
 * - kafkajs heartbeats only between fetches, and the mock holds an empty
 *   fetch for maxWaitTimeInMs (kafkajs default 5000, above sessionTimeout),
 *   so keep it small; eachMessage handlers must not block for seconds.
 * - rebalanceTimeout is sent but ignored by the mock; kafkajs waits
 *   max(client requestTimeout, rebalanceTimeout + 5 s) for a JoinGroup answer.
 */
export const MOCK_GROUP_SETTINGS = {
  sessionTimeout: 4_000,
  heartbeatInterval: 500,
  rebalanceTimeout: 3_000,
  maxWaitTimeInMs: 200,
  partitionAssigners: [mockSafeRoundRobin],
} satisfies Omit<ConsumerConfig, 'groupId'>;

/**
 * A real Kafka-protocol cluster on 127.0.0.1 for tests: librdkafka's mock
 * cluster (librdkafka-dev) in a small C launcher, kafka-broker/mock-broker.c,
 * compiled on first use. Topics are created up front because the mock has no
 * CreateTopics; a topic that only clients mention is auto-created with 4
 * partitions. Broker ids are 1..brokers. Committed offsets live in the
 * launcher process: a new consumer in the same group resumes from them, they
 * outlast setDown/setUp, and they are gone when the broker stops.
 * Not served by the mock: CreateTopics, ListGroups, DescribeGroups (so no
 * admin.setOffsets/resetOffsets either) and offsets by timestamp. A broker
 * set down keeps leading its partitions (no failover): its port refuses
 * connections until setUp, on the same port.
 */
export class KafkaBroker {
  private readonly lines: AsyncIterator<string>;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly child: ChildProcess,
    lines: AsyncIterator<string>,
    private readonly stderr: () => string,
    /** Comma-separated host:port list, for `brokers` in client configs that take a string. */
    readonly bootstrap: string,
  ) {
    this.lines = lines;
  }

  get brokers(): string[] {
    return this.bootstrap.split(',');
  }

  static async start(opts: { topics: { name: string; partitions: number }[]; brokers?: number }): Promise<KafkaBroker> {
    const binary = await buildLauncher();
    const args = [String(opts.brokers ?? 1), ...opts.topics.map((topic) => `${topic.name}:${topic.partitions}`)];
    // stdin stays a pipe for commands, and its EOF is what ends the broker when this process dies.
    const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    // A write to a broker that already died fails through the closed stdout instead.
    child.stdin!.on('error', () => {});
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4_000);
    });
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    // 'close', not 'exit': it comes after stdout and stderr have both ended, so stderr holds all of a failed start's reason.
    const exited = new Promise<never>((_, reject) => {
      child.once('error', reject);
      child.once('close', (code, signal) => reject(new Error(`mock Kafka broker exited (${signal ?? code}) before it was ready: ${stderr.trim()}`)));
    });
    exited.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`mock Kafka broker did not print its address within 10 s: ${stderr.trim()}`)), 10_000);
    });
    try {
      const first = await Promise.race([lines.next(), exited, timeout]);
      // stdout can end before the last of stderr is read: wait for 'close', which rejects with the reason.
      if (first.done === true) await Promise.race([exited, timeout]);
      const match = first.done === true ? null : /^bootstrap=(.+)$/.exec(first.value);
      if (match === null) throw new Error(`mock Kafka broker said ${JSON.stringify(first.value)}: ${stderr.trim()}`);
      return new KafkaBroker(child, lines, () => stderr, match[1]!);
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The broker drops its connections and refuses new ones, like a crashed or partitioned broker. */
  setDown(id: number): Promise<void> {
    return this.command(`down ${id}`);
  }

  setUp(id: number): Promise<void> {
    return this.command(`up ${id}`);
  }

  /** Ends the cluster (its topics and committed offsets go with it). */
  async stop(): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exit = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.stdin!.end();
    const kill = setTimeout(() => child.kill('SIGKILL'), 2_000);
    await exit;
    clearTimeout(kill);
  }

  /** One command line, one answer line; commands are serialised so answers pair up. */
  private command(line: string): Promise<void> {
    const run = async (): Promise<void> => {
      this.child.stdin!.write(`${line}\n`);
      const answer = await this.lines.next();
      if (answer.done === true) throw new Error(`mock Kafka broker exited during "${line}": ${this.stderr().trim()}`);
      if (answer.value !== 'ok') throw new Error(`mock Kafka broker: "${line}" -> ${answer.value}`);
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => {});
    return result;
  }
}

/**
 * Compiles the launcher once per source version into node_modules/.cache.
 * Built under a temporary name and renamed, so vitest workers starting
 * brokers at the same time never run a half-written binary.
 */
async function buildLauncher(): Promise<string> {
  const text = readFileSync(source);
  const hash = createHash('sha256').update(text).update(gccArgs.join(' ')).digest('hex').slice(0, 16);
  const dir = `${cacheRoot}${hash}`;
  const binary = `${dir}/mock-broker`;
  if (existsSync(binary)) return binary;
  if (!existsSync(mockHeader)) throw new Error(`librdkafka-dev is missing (no ${mockHeader}); ${installHint}`);
  await mkdir(dir, { recursive: true });
  const temp = `${binary}.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    await promisify(execFile)('gcc', [...gccArgs, '-o', temp, source, '-lrdkafka']);
    await rename(temp, binary);
  } catch (error) {
    await rm(temp, { force: true });
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`gcc is missing; ${installHint}`);
    throw new Error(`compiling ${source} failed (if gcc or librdkafka-dev is missing, ${installHint}): ${(error as { stderr?: string }).stderr ?? String(error)}`);
  }
  return binary;
}
