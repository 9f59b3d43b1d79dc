// Validation with errors that name the file and the field: zod issues, spec issues, checked JSON files.
import { z } from 'zod';

/** A fault in a spec: `path` is the field's dotted path in it (e.g. 'trigger.size'). */
export interface SpecIssue { path: string; message: string }

/** 'name: message; ...', `name` turning a path into what the user wrote (a flag, a config key). */
export function formatIssues(issues: SpecIssue[], name = (p: string): string => `'${p}'`): string {
  return issues.map((i) => `${name(i.path)}: ${i.message}`).join('; ');
}

/** The issue without its key: the allowed values of an enum and the unknown keys spelled out. */
export function issueMessage(i: z.ZodIssue): string {
  if (i.code === 'invalid_enum_value') return `must be one of ${i.options.map((o) => `'${String(o)}'`).join(', ')}, got '${String(i.received)}'`;
  if (i.code === 'invalid_type' && i.received === 'undefined') return `missing (expected ${i.expected})`;
  if (i.code === 'unrecognized_keys') return `unknown key(s) ${i.keys.map((k) => `'${k}'`).join(', ')}`;
  return i.message;
}

/** "'key.path': message" ("'key' must be one of ..." for enums). */
export function describeIssue(i: z.ZodIssue): string {
  const key = i.path.join('.') || '(root)';
  return `'${key}'${i.code === 'invalid_enum_value' ? ' ' : ': '}${issueMessage(i)}`;
}

export function parseWith<T extends z.ZodTypeAny>(schema: T, value: unknown, source: string): z.output<T> {
  const r = schema.safeParse(value);
  if (!r.success) throw new Error(`${source}: ${r.error.issues.map(describeIssue).join('; ')}`);
  return r.data;
}

/** A number whose range errors read 'must be <what>, got <value>' (a schema's range, said with the value). */
export const numberThat = (what: string): z.ZodNumber => z.number({
  errorMap: (issue, ctx) => (['too_small', 'too_big', 'not_finite'].includes(issue.code) ? { message: `must be ${what}, got ${String(ctx.data)}` } : { message: ctx.defaultError }),
});

/** A number in a range written as in mathematics: inRange('(0, 1]').gt(0).max(1). */
export const inRange = (range: string): z.ZodNumber => numberThat(`in ${range}`);

/** Throws the first thing `schema` rules out in `spec`, as '<what> <path> <message>' (specs built in code). */
export function assertSpec(schema: z.ZodTypeAny, spec: unknown, what: string): void {
  const [bad] = specIssues(schema, spec);
  if (bad) throw new Error(`${what} ${bad.path} ${bad.message}`);
}

/** What in `spec` its schema rules out, as issues with dotted paths under `prefix` (empty when it parses). */
export function specIssues(schema: z.ZodTypeAny, spec: unknown, prefix = ''): SpecIssue[] {
  const r = schema.safeParse(spec);
  return r.success ? [] : r.error.issues.map((i) => ({ path: [prefix, ...i.path].filter((p) => p !== '').join('.'), message: issueMessage(i) }));
}
