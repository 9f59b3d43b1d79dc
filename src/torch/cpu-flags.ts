// The CPU's instruction-set flags as Linux lists them (/proc/cpuinfo: 'flags' on x86, 'Features' on
// ARM); empty where they cannot be read.
import * as fs from 'fs';

export function cpuFlags(): Set<string> {
  try {
    const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => /^(flags|Features)\s*:/.test(l));
    return new Set(line ? line.split(':')[1].trim().split(/\s+/) : []);
  } catch {
    return new Set();
  }
}
