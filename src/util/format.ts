// Numbers as people read them in tables and progress lines.

/** 0.1234 -> '12.34%'; null or NaN (no attack, nothing measured) -> '-' */
export const pct = (v: number | null): string => (v === null || Number.isNaN(v) ? '-' : `${(100 * v).toFixed(2)}%`);

/** seconds -> '45 s', '12 min', '3.4 h' */
export function duration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
