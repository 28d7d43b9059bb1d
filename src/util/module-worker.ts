/**
 * Worker threads whose entry is a module beside the caller: a .js file in
 * dist, which Node loads as it is, or a .ts file in src when the process runs
 * under tsx (the CLI in the tests, the benches, vitest). On Node 20 the module
 * hooks of `--import tsx` in a worker's execArgv do not reach the worker's
 * entry, so a .ts entry is started by a line of JavaScript that registers
 * tsx's loader in the worker and then imports it. Neither needs the
 * parent's node flags, and inheriting them (the default) would boot a
 * parent's `--import tsx` loader in the worker for nothing: ~200 ms of CPU.
 */
import { extname } from 'node:path';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** The module `name` in the directory of `moduleUrl`, with its extension: the .ts sibling of a .ts module, the .js one of a .js module. */
export function siblingModule(moduleUrl: string, name: string): URL {
  return new URL(`./${name}${extname(new URL(moduleUrl).pathname)}`, moduleUrl);
}

export function startModuleWorker(entry: URL, options: WorkerOptions = {}): Worker {
  options = { execArgv: [], ...options };
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, options);
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(boot, { ...options, eval: true });
}
