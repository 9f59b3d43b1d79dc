// What the benches share: the process's CPU time and the median of repeated measurements.

/** The process's CPU time so far (user + system, all threads), in ms: robust to other jobs on a shared machine. */
export const cpuMs = (): number => { const c = process.cpuUsage(); return (c.user + c.system) / 1000; };

/** The median (the mean of the two middle values for an even count). */
export function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b), h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}
