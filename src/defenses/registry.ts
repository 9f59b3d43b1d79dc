// Every defense behind one interface (method.ts): each declares its name, option schema, presets and run
// in its own file; this is the list of them, and the lookups and option resolution the callers share.
// Options are validated by zod; errors name the option.
import { z } from 'zod';
import { DefenseMethod } from './method';
import { VARDEFENSE } from './vardefense';
import { FT } from './finetune';
import { FINE_PRUNING } from './fine-pruning';
import { NAD } from './nad';
import { CLP } from './clp';
import { ANP } from './anp';
import { GAN } from './gan';
import { FST } from './fst';
import { FT_SAM } from './ft-sam';
import { SAU } from './sau';

export type { DefenseMethod, DefenseReport } from './method';
export { VARDEFENSE_PRESETS } from './vardefense';

/** The defenses, VarDefense first (the tables' order); adding one is its file and a line here. */
const LIST: DefenseMethod[] = [VARDEFENSE, FT, FINE_PRUNING, NAD, CLP, ANP, GAN, FST, FT_SAM, SAU];

export const DEFENSES: Record<string, DefenseMethod> = Object.fromEntries(LIST.map((d) => [d.name, d]));

export const DEFENSE_NAMES = Object.keys(DEFENSES);

/** 'method' or 'method:preset', as on the command line and in tables. */
export const defenseLabel = (method: string, preset: string): string => (preset === 'default' ? method : `${method}:${preset}`);
/** The folder a defense writes to: 'method' or 'method-preset'. */
export const defenseDirName = (method: string, preset: string): string => defenseLabel(method, preset).replace(':', '-');

export function defenseMethod(name: string): DefenseMethod {
  const m = Object.hasOwn(DEFENSES, name) ? DEFENSES[name] : undefined;
  if (!m) throw new Error(`unknown defense '${name}' (known: ${DEFENSE_NAMES.join(', ')})`);
  return m;
}

function describeIssue(i: z.ZodIssue, method: string): string {
  const key = i.path.join('.') || '(options)';
  if (i.code === 'unrecognized_keys') return `${method}: unknown option(s) ${i.keys.map((k) => `'${k}'`).join(', ')}`;
  if (i.code === 'invalid_enum_value') return `${method}: option '${key}' must be one of ${i.options.map((o) => `'${String(o)}'`).join(', ')}, got '${String(i.received)}'`;
  return `${method}: option '${key}': ${i.message}`;
}

/** The preset's options with overrides applied, validated. */
export function resolveOptions(method: DefenseMethod, preset = 'default', overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base = Object.hasOwn(method.presets, preset) ? method.presets[preset] : undefined;
  if (!base) throw new Error(`${method.name}: unknown preset '${preset}' (known: ${Object.keys(method.presets).join(', ')})`);
  const r = method.schema.safeParse({ ...base, ...overrides });
  if (!r.success) throw new Error(r.error.issues.map((i) => describeIssue(i, method.name)).join('; '));
  return r.data;
}

/** 'key=value' pairs from the command line; values are JSON when they parse as JSON, else strings. */
export function parseOverrides(pairs: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of pairs) {
    const m = /^([A-Za-z][\w]*)=(.*)$/.exec(p);
    if (!m) throw new Error(`--set expects key=value, got '${p}'`);
    let v: unknown = m[2];
    try { v = JSON.parse(m[2]); } catch { /* a plain string */ }
    out[m[1]] = v;
  }
  return out;
}
