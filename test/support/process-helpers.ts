/**
 * Small helpers shared by tests that start `strata` processes and read their
 * /metrics.
 */

/** The environment minus STRATA_* and REDIS_URL, so the developer's shell cannot leak into a server under test. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('STRATA_') && name !== 'REDIS_URL')), ...extra };
}

/** Sum of a metric's samples (Prometheus text) whose labels include `labels`; undefined when there is none. */
export function sumMetric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  let total: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || !/[\s{]/.test(line[name.length] ?? '')) continue;
    if (wanted.every((label) => line.includes(label))) total = (total ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}
