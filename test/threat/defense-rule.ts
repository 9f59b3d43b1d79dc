// What a defense may reach through its imports: the engine, pure helpers and the defender's data
// types, never a data reader, attack code, a run's files, the CLI or experiments, nor anything that
// touches files, processes or the network. Node built-ins and packages are allowed by name only, so a
// new one must be judged before a defense can use it.
import { DYNAMIC, Rule } from './import-graph';

const FORBIDDEN_FILES: [RegExp, string][] = [
  [/^src\/data\/(datasets|idx|cifar|download|synthetic)\.ts$/, 'a data reader'],
  [/^src\/attacks\//, 'attack code'],
  [/^src\/train\/(run|run-records|metrics|checkpoint)\.ts$/, "a run's files, checkpoints or test metrics"],
  [/^src\/util\/(files|atomic)\.ts$/, 'file access'],
  [/^src\/torch\/(index|serialization\/.*)\.ts$/, 'checkpoint files (import src/torch/compute)'],
  [/^src\/(cli|experiments|report)\//, 'the CLI, experiments or reports'],
];

/** path: string manipulation only; os: host facts (cores for the thread count), never a file's contents. */
const ALLOWED_BUILTINS = new Set(['node:path', 'node:os']);
const ALLOWED_PACKAGES = new Set(['zod']);
/** The engine loads its compiled addon by a computed path. */
const DYNAMIC_LOADERS = new Set(['src/torch/native.ts']);

export const defenseRule: Rule = (m, importer) => {
  if (m === DYNAMIC) return DYNAMIC_LOADERS.has(importer) ? null : 'a load or host access the graph cannot follow (non-literal require/import, eval, Function, process.binding, fetch...)';
  if (m.startsWith('unresolved:')) return 'a module that does not resolve';
  if (m.startsWith('node:')) return ALLOWED_BUILTINS.has(m) ? null : 'a Node built-in outside path and os (file system, processes, network...)';
  if (!m.endsWith('.ts')) return ALLOWED_PACKAGES.has(m) ? null : 'a package not judged safe for defenses';
  if (!m.startsWith('src/')) return 'a file outside the library';
  if (m.endsWith('.d.ts')) return 'JavaScript behind a declaration file, which cannot be checked';
  return FORBIDDEN_FILES.find(([re]) => re.test(m))?.[1] ?? null;
};
