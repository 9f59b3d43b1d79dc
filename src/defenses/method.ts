// What a defense is to the toolkit: a name, one zod schema of its options (their type is the schema's),
// named presets of those options, and a run that sees only the defender's data. Each defense declares
// itself with defineDefense in its own file; registry.ts lists them.
import { z } from 'zod';
import type { nn } from '../torch/compute';
import type { DefenseData, DefenseHooks } from './common';

export interface DefenseReport { method: string; options: object; valAccBefore: number; valAccAfter: number; seconds: number }

export interface DefenseMethod {
  name: string;
  summary: string;
  schema: z.ZodObject<z.ZodRawShape>;
  /** named option sets; 'default' is used when none is given */
  presets: Record<string, Record<string, unknown>>;
  run(model: nn.Module, data: DefenseData, options: never, hooks: DefenseHooks): DefenseReport;
}

/**
 * A defense from its schema: the presets and the run are typed by it. A defense that cannot run on a
 * model says which defense it is (the pipeline adds the model).
 */
export function defineDefense<S extends z.ZodObject<z.ZodRawShape>>(d: {
  name: string; summary: string; schema: S; presets: { default: z.infer<S> } & Record<string, z.infer<S>>;
  run: (model: nn.Module, data: DefenseData, options: z.infer<S>, hooks: DefenseHooks) => DefenseReport;
}): DefenseMethod {
  const run = (model: nn.Module, data: DefenseData, options: never, hooks: DefenseHooks): DefenseReport => {
    try {
      return d.run(model, data, options, hooks);
    } catch (e) {
      if (!(e instanceof Error) || e.message.startsWith(`${d.name}: `)) throw e;
      e.message = `${d.name}: ${e.message}`;
      throw e;
    }
  };
  return { name: d.name, summary: d.summary, schema: d.schema, presets: d.presets as Record<string, Record<string, unknown>>, run };
}
