// --precision: withPrecision/setPrecision (autocast at libtorch's dispatcher), what stays fp32, the
// conv-BN folding at inference under bf16, and the refusal where bf16 cannot run well (no AVX512-BF16
// or AMX, or ONEDNN_MAX_CPU_ISA below them). Passes on any x86 CPU: the bf16 cases are skipped (with
// the reason) where bf16 is refused, and the refusal cases hold everywhere.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { execFileSync, spawnSync } from 'child_process';
import * as path from 'path';
import * as T from '../../src/torch';
import { computeEnvironment } from '../../src/torch/environment';
import { ResNet18 } from '../../src/models/resnet';
import { repoRoot } from '../helpers';

const support = T.bf16Support();
const skip = support.ok ? false : `bf16 refused here: ${support.reason}`;

test('withPrecision sets and restores autocast, nests, and fp32 inside bf16 turns it off', { skip }, () => {
  assert.equal(T.getPrecision(), 'fp32');
  const w = T.randn([4, 3]), x = T.randn([2, 3]);
  T.withPrecision('bf16', () => {
    assert.equal(T.getPrecision(), 'bf16');
    assert.equal(T.F.linear(x, w).dtype, 'bfloat16');
    T.withPrecision('fp32', () => assert.equal(T.F.linear(x, w).dtype, 'float32'));
    assert.equal(T.getPrecision(), 'bf16');
    assert.equal(computeEnvironment().precision, 'bf16');
    assert.throws(() => T.withPrecision('bf16', () => { throw new Error('inner'); }), /inner/);
    assert.equal(T.getPrecision(), 'bf16', 'restored after a throw');
  });
  assert.equal(T.getPrecision(), 'fp32');
  assert.equal(computeEnvironment().precision, 'fp32');
  assert.equal(T.F.linear(x, w).dtype, 'float32');
});

test('under bf16: convolutions and linear layers in bf16, losses in fp32, parameters and their gradients fp32; toArray reads bf16 as numbers', { skip }, () => {
  T.manualSeed(5);
  const m = new ResNet18({ width: 4, inChannels: 1 });
  const x = T.randn([8, 1, 28, 28]), y = T.randint(0, 10, [8]);
  T.withPrecision('bf16', () => {
    const out = m.call(x);
    assert.equal(out.dtype, 'bfloat16');
    const l = T.F.crossEntropy(out, y);
    assert.equal(l.dtype, 'float32');
    assert.equal(T.F.mseLoss(out, T.zeros([8, 10])).dtype, 'float32');
    l.backward();  // inside the block: the addon runs backward with autocast off
    const a = out.toArray();
    assert.ok(a instanceof Float32Array && a.length === 80 && Number.isFinite(a[0]) && Math.abs(a[0]) < 100, 'bf16 values read as float32');
    assert.equal(a[0], out.to('float32').toArray()[0]);
  });
  for (const [k, p] of m.namedParameters()) {
    assert.equal(p.dtype, 'float32', k);
    assert.equal(p.grad!.dtype, 'float32', `grad ${k}`);
  }
  assert.equal(m.bn1.runningMean.dtype, 'float32');
});

test('bf16 inference does not fold conv and BN (PyTorch autocast\'s arithmetic) and stays near fp32', { skip }, () => {
  T.manualSeed(6);
  const m = new ResNet18({ width: 8, inChannels: 1 });
  // a few training steps give the BN layers real statistics
  m.train();
  for (let i = 0; i < 3; i++) T.noGrad(() => T.dispose(m.call(T.randn([16, 1, 28, 28]))));
  m.eval();
  const x = T.randn([16, 1, 28, 28]);
  const fp32 = T.noGrad(() => m.call(x));
  const fp32Unfolded = T.scope(() => m.call(x).detach());  // autograd on: the fp32 path without folding
  const [plain, unfolded] = T.withPrecision('bf16', () => {
    const f = T.noGrad(() => m.call(x));
    // a hook on every batch norm turns folding off everywhere: the reference unfolded bf16 path
    const hooks = m.namedModules().filter(([, mod]) => mod instanceof T.nn.BatchNorm2d).map(([, mod]) => mod.registerForwardHook(() => undefined));
    const u = T.noGrad(() => m.call(x));
    hooks.forEach((k) => k.remove());
    return [f, u];
  });
  assert.equal(plain.dtype, 'bfloat16');
  const rel = (a: T.Tensor, b: T.Tensor): number => T.scope(() => a.to('float32').sub(b.to('float32')).abs().amax().item() / b.to('float32').abs().amax().item());
  // the same operators in the same order on both sides: equal to within a rounding step's noise
  assert.ok(rel(plain, unfolded) < 1e-6, `bf16 without hooks vs the unfolded bf16 path: relative max diff ${rel(plain, unfolded)}`);
  // control: in fp32 the engine does fold, which reorders the rounding (small but not zero)
  const d32fold = rel(fp32, fp32Unfolded);
  assert.ok(d32fold > 0 && d32fold < 1e-4, `fp32 folded vs unfolded: relative max diff ${d32fold}`);
  const d32 = rel(plain, fp32);
  assert.ok(d32 < 5e-2, `bf16 vs fp32 logits: relative max diff ${d32}`);
  const agree = T.scope(() => plain.argmax(1).eq(fp32.argmax(1)).sum().item());
  assert.ok(agree >= 14, `bf16 and fp32 predict the same class for ${agree} of 16 images`);
});

const cli = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');

test('ONEDNN_MAX_CPU_ISA=AVX2: --precision bf16 refuses at start with the reason; fp32 is unaffected', () => {
  const env: NodeJS.ProcessEnv = { ...process.env, ONEDNN_MAX_CPU_ISA: 'AVX2' };
  delete env.VARDEFENSE_BF16;
  const probe = execFileSync(process.execPath, ['-e', `
    const T = require(${JSON.stringify(path.join(repoRoot, 'dist', 'src', 'torch'))});
    let msg = null;
    try { T.setPrecision('bf16'); } catch (e) { msg = e.message; }
    console.log(JSON.stringify({ msg, precision: T.getPrecision() }));`], { env, encoding: 'utf8' });
  const r = JSON.parse(probe) as { msg: string | null; precision: string };
  assert.ok(r.msg, 'setPrecision(bf16) refuses');
  assert.match(r.msg, /--precision bf16 is not available: (ONEDNN_MAX_CPU_ISA=AVX2 keeps oneDNN from|this CPU has neither AVX512-BF16 nor AMX)/);
  assert.match(r.msg, /use --precision fp32/);
  assert.equal(r.precision, 'fp32');
  // the CLI refuses before reading any data or writing the run directory
  const run = spawnSync(process.execPath, [cli, 'train', '--dataset', 'mnist', '--data-dir', '/nonexistent', '--precision', 'bf16', '--out', '/nonexistent/run'], { env, encoding: 'utf8' });
  assert.equal(run.status, 1);
  assert.match(run.stderr, /--precision bf16 is not available/);
});

test('VARDEFENSE_BF16=force with ONEDNN_MAX_CPU_ISA=AVX2 runs bf16 where libtorch can, or names the failing convolution', () => {
  const env = { ...process.env, ONEDNN_MAX_CPU_ISA: 'AVX2', VARDEFENSE_BF16: 'force' };
  const out = execFileSync(process.execPath, ['-e', `
    const T = require(${JSON.stringify(path.join(repoRoot, 'dist', 'src', 'torch'))});
    console.log(JSON.stringify(T.bf16Support()));`], { env, encoding: 'utf8' });
  const s = JSON.parse(out) as { ok: boolean; reason?: string };
  // measured on an AMX Xeon: oneDNN capped at AVX2 has no bf16 convolution ('could not create a primitive descriptor iterator')
  if (!s.ok) assert.match(s.reason!, /bfloat16 convolution failed here/);
});
