// What the command line prints for a failure.

/** One line naming what is wrong (the first line of a multi-line message, e.g. libtorch's); with debug, the whole message and stack. */
export function errorText(e: unknown, debug: boolean): string {
  const err = e instanceof Error ? e : new Error(String(e));
  if (debug) return err.stack ?? err.message;
  const lines = err.message.split('\n').map((l) => l.trim()).filter(Boolean);
  return `error: ${lines[0] ?? err.name}${lines.length > 1 ? ' (VARDEFENSE_DEBUG=1 shows the rest)' : ''}`;
}
