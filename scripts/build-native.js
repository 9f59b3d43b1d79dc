#!/usr/bin/env node
// Builds the libtorch addon with node-gyp when its sources are newer than the binary.
// Uses the running Node's own headers (never downloads any).
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const out = path.join(root, 'build/Release/vardefense_native.node');
const sources = ['native/addon.cc', 'native/torch-paths.js', 'binding.gyp'].map((f) => path.join(root, f));
const stamp = path.join(root, 'build/.libtorch');
const libtorch = process.env.LIBTORCH || '';

function upToDate() {
  if (!fs.existsSync(out) || !fs.existsSync(stamp)) return false;
  if (fs.readFileSync(stamp, 'utf8') !== libtorch) return false;
  const built = fs.statSync(out).mtimeMs;
  return sources.every((s) => fs.statSync(s).mtimeMs <= built);
}

function nodeHeadersDir() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (fs.existsSync(path.join(prefix, 'include/node/node_api.h'))) return prefix;
  throw new Error(`Node headers not found under ${prefix}/include/node (install the nodejs dev headers)`);
}

if (upToDate() && !process.argv.includes('--force')) process.exit(0);
const gyp = require.resolve('node-gyp/bin/node-gyp.js');
console.log(`building native addon (libtorch: ${libtorch || 'Debian libtorch-dev'})`);
// quiet when it works (node-gyp prints dozens of lines), the whole log when it fails; VARDEFENSE_VERBOSE=1 shows it live
const verbose = process.env.VARDEFENSE_VERBOSE === '1';
try {
  execFileSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodeHeadersDir()}`, '-j', String(require('os').cpus().length)], {
    cwd: root,
    stdio: verbose ? 'inherit' : ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  });
} catch (e) {
  if (!verbose) process.stderr.write(`${e.stdout || ''}${e.stderr || ''}`);
  console.error(`building the native addon failed (node-gyp exit status ${e.status}); the full log is above`);
  process.exit(1);
}
fs.writeFileSync(stamp, libtorch);
