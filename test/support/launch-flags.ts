import { readFileSync } from 'node:fs';

/**
 * The node flags on a build's cli/main.js shebang: what the `strata` bin, npm
 * start and the Docker image run it with, so benchmarks and the loadtest
 * measure a build as it is launched.
 */
export function launchFlags(mainJs: string): string[] {
  const shebang = /^#!.*\bnode\b(.*)$/m.exec(readFileSync(mainJs, 'utf8').split('\n', 1)[0]!);
  return shebang === null ? [] : shebang[1]!.split(/\s+/).filter((flag) => flag !== '');
}
