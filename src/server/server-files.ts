import { realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { invalid, StrataError } from '../errors.js';

/**
 * Files on the server's disk that a request may name (snapshot imports,
 * GetHistoricalFeatures' entities_path): only those inside --server-files-dir,
 * after `..` and symlinks are resolved, so a request cannot read the data
 * dir, the registry or anything else the server process can. Relative paths
 * are taken from that directory. Without it, no request names a file.
 */
export class ServerFiles {
  /** A real path (options.ts resolved it at start), or undefined. */
  private readonly root: string | undefined;

  constructor(root: string | undefined) {
    this.root = root;
  }

  /** The real path of `path`, or a refusal naming `field`. A missing file inside the directory is left for its reader to report. */
  async resolve(path: string, field: string): Promise<string> {
    const root = this.root;
    if (root === undefined) throw new StrataError('STRATA_SERVER_FILES_DISABLED', `${field}: this server reads no files a request names; start it with --server-files-dir DIR to allow those in DIR`, { field });
    if (path.length === 0 || path.includes('\0')) throw invalid('STRATA_MALFORMED_REQUEST', field, 'must be a file path');
    const outside = (): StrataError => invalid('STRATA_PATH_OUTSIDE_FILES_DIR', field, `${JSON.stringify(path)} is not inside the server's files directory`);
    const lexical = resolve(root, path);
    // Checked before the file is looked at, so nothing is learnt of files outside (not even whether they exist).
    if (!inside(root, lexical)) throw outside();
    let real: string;
    try {
      real = await realpath(lexical);
    } catch {
      return lexical;
    }
    if (!inside(root, real)) throw outside();
    return real;
  }
}

function inside(root: string, path: string): boolean {
  const rest = relative(root, path);
  return rest !== '' && rest !== '..' && !rest.startsWith(`..${sep}`) && !isAbsolute(rest);
}
