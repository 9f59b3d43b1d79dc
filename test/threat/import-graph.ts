// The import graph of a TypeScript project as Node would load it, read with the compiler's own parser
// and module resolver. Edges: import and export-from declarations (type-only ones too, so that even a
// type comes from an allowed module), import = require(), require() and import() calls, import('x')
// types. What cannot be followed statically (a non-literal specifier, a bare `require`, eval,
// process.binding, Function, fetch, globalThis...) is an edge to DYNAMIC.
import * as fs from 'fs';
import { isBuiltin } from 'module';
import * as path from 'path';
import * as ts from 'typescript';

export const DYNAMIC = '<dynamic load>';

const OPTIONS: ts.CompilerOptions = { module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10 };

/** Globals through which code can load a module or reach the host without an import. */
const GLOBAL_LOADERS = new Set(['require', 'eval', 'Function', 'fetch', 'globalThis', 'global']);
/** Members that do the same: module.require, process.binding / dlopen / mainModule, Module._load, f.constructor (Function). */
const MEMBER_LOADERS = new Set(['require', 'binding', '_linkedBinding', 'dlopen', 'mainModule', '_load', 'constructor']);

/** The specifiers `file` loads, in source order. */
export function specifiersOf(file: string, text = fs.readFileSync(file, 'utf8')): string[] {
  const out: string[] = [];
  const literal = (e: ts.Node | undefined): string => (e && ts.isStringLiteralLike(e) ? e.text : DYNAMIC);
  const visit = (n: ts.Node): void => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier) out.push(literal(n.moduleSpecifier));
    else if (ts.isImportEqualsDeclaration(n) && ts.isExternalModuleReference(n.moduleReference)) out.push(literal(n.moduleReference.expression));
    else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) out.push(literal(n.arguments[0]));
    else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument)) out.push(literal(n.argument.literal));
    else if (ts.isCallExpression(n) && loaderName(n.expression) === 'require') {
      out.push(literal(n.arguments[0]));
      n.arguments.forEach(visit);
      return;
    } else if (loaderName(n)) out.push(DYNAMIC);
    ts.forEachChild(n, visit);
  };
  visit(ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true));
  return out;
}

/** The loader a global or a member (x.name, x['name']) refers to, if any. */
function loaderName(n: ts.Node): string | undefined {
  if (ts.isIdentifier(n) && !isMemberName(n)) return GLOBAL_LOADERS.has(n.text) ? n.text : undefined;
  const name = ts.isPropertyAccessExpression(n) ? n.name.text
    : ts.isElementAccessExpression(n) && ts.isStringLiteralLike(n.argumentExpression) ? n.argumentExpression.text : undefined;
  if (name === 'constructor' && isNameRead(n)) return undefined;
  return name !== undefined && MEMBER_LOADERS.has(name) ? name : undefined;
}

/** x.constructor.name: reading a class's name, not reaching the Function constructor. */
function isNameRead(n: ts.Node): boolean {
  return ts.isPropertyAccessExpression(n.parent) && n.parent.expression === n && n.parent.name.text === 'name';
}

/** A name after a dot, in a declaration or in a type: not a use of the global of that name. */
function isMemberName(n: ts.Identifier): boolean {
  const p = n.parent;
  if (ts.isTypeReferenceNode(p) || ts.isExpressionWithTypeArguments(p)) return true;
  return (ts.isPropertyAccessExpression(p) || ts.isPropertyAssignment(p) || ts.isMethodDeclaration(p) || ts.isPropertyDeclaration(p)
    || ts.isPropertySignature(p) || ts.isMethodSignature(p)) && p.name === n;
}

/**
 * What a specifier names: a project file relative to `root` ('src/a/b.ts'), a Node built-in
 * ('node:fs'), a package ('zod'), DYNAMIC, or 'unresolved:<specifier>'.
 */
export function resolveSpecifier(spec: string, fromFile: string, root: string): string {
  if (spec === DYNAMIC) return DYNAMIC;
  if (isBuiltin(spec)) return `node:${spec.replace(/^node:/, '')}`;
  const r = ts.resolveModuleName(spec, fromFile, OPTIONS, ts.sys).resolvedModule;
  if (!r) return `unresolved:${spec}`;
  if (r.isExternalLibraryImport) return spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');
  return path.relative(root, r.resolvedFileName).split(path.sep).join('/');
}

/** Why a module may not be reached from `importer`, or null when it may. */
export type Rule = (module: string, importer: string) => string | null;

export interface Violation { chain: string[]; reason: string }

/**
 * Walks every module reachable from `entry` (a file relative to `root`) breadth first, and returns
 * the shortest import chain to each module the rule forbids. Only project files are walked into.
 */
export function violations(entry: string, root: string, rule: Rule): Violation[] {
  const parent = new Map<string, string | null>([[entry, null]]);
  const chain = (m: string): string[] => { const c: string[] = []; for (let x: string | null = m; x !== null; x = parent.get(x)!) c.unshift(x); return c; };
  const found: Violation[] = [];
  const queue = [entry];
  while (queue.length) {
    const file = queue.shift()!;
    const abs = path.join(root, file);
    for (const spec of specifiersOf(abs)) {
      const m = resolveSpecifier(spec, abs, root);
      const reason = rule(m, file);
      if (reason) found.push({ chain: [...chain(file), spec === m ? m : `${m} ('${spec}')`], reason });
      else if (!parent.has(m) && m.endsWith('.ts')) {
        parent.set(m, file);
        queue.push(m);
      }
    }
  }
  return found;
}

export function describe(v: Violation): string {
  return `${v.chain.join(' -> ')}: ${v.reason}`;
}
