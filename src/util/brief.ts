// Untrusted values (from a pickle or a JSON header) shown in error messages: short, and never a
// second error (deeply nested values overflow JSON.stringify and String()).

/** `v` as a string of at most `max` characters: strings as they are, other values as JSON. */
export function brief(v: unknown, max = 80): string {
  let s: string;
  try {
    s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
  } catch {
    s = Array.isArray(v) ? `a list of ${v.length} items` : `a ${typeof v}`;
  }
  return s.length > max ? `${s.slice(0, max)}...` : s;
}
