// Numbers as people read them in tables and progress lines.

/** 0.1234 -> '12.34%'; null or NaN (no attack, nothing measured) -> '-' */
export const pct = (v: number | null): string => (v === null || Number.isNaN(v) ? '-' : `${(100 * v).toFixed(2)}%`);
