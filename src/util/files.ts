// Reading whole files with errors that name the file.
import * as fs from 'fs';

export function readFileNamed(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
}
