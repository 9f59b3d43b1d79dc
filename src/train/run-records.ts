// Reading a training run's JSON records (config.json, attack.json, metrics.json): they name the
// trigger, the target and the poisoned images and hold test metrics, so every read is refused inside
// a defense.
import { assertTestSetAllowed } from '../data/test-set-lock';
import { readFileNamed } from '../util/files';

export function readRunRecord<T>(file: string): T {
  assertTestSetAllowed(`run record ${file}`);
  const text = readFileNamed(file).toString('utf8');
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
}
