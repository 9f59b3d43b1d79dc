// The runtime half of the threat model: a lock under which the test split, triggers, poisoning and
// the run's records refuse to be read. AsyncLocalStorage carries it into every continuation started
// inside (awaits, timers, promise callbacks), so a defense cannot step out of it by going async.
import { AsyncLocalStorage } from 'node:async_hooks';

const locked = new AsyncLocalStorage<true>();

/** Runs `fn` with every test-set, trigger and run-record read refused: defenses run inside it. */
export function withoutTestSet<T>(fn: () => T): T {
  return locked.run(true, fn);
}

/** Throws inside withoutTestSet(): `what` names the refused read. */
export function assertTestSetAllowed(what: string): void {
  if (locked.getStore()) throw new Error(`${what}: refused inside a defense (defenses see only the clean split)`);
}
