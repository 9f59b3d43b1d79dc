// Checks on paths given by the user, so that errors name the argument and the path.
import * as fs from 'fs';

/** Throws unless `file` is an existing file (not a directory); `label` names where it came from, e.g. '--weights'. */
export function assertFile(file: string, label?: string): void {
  const where = label ? `${label} ${file}` : file;
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st) throw new Error(`${where}: no such file`);
  if (st.isDirectory()) throw new Error(`${where}: is a directory, not a file`);
}
