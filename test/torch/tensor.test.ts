import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import * as T from '../../src/torch';

test('thread count defaults to the machine cores (VARDEFENSE_THREADS when set)', () => {
  assert.equal(T.getNumThreads(), Number(process.env.VARDEFENSE_THREADS ?? os.availableParallelism()));
});

test("libgomp reads the engine's short spin unless the user set a wait policy or spin count", () => {
  const spin = (extra: Record<string, string>): string => {
    const env: NodeJS.ProcessEnv = { ...process.env, OMP_DISPLAY_ENV: 'VERBOSE', ...extra };
    for (const k of ['OMP_WAIT_POLICY', 'GOMP_SPINCOUNT']) if (!(k in extra)) delete env[k];
    const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path.resolve(__dirname, '../../src/torch'))})`], { env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return /GOMP_SPINCOUNT = '(\d+)'/.exec(r.stderr)?.[1] ?? `no GOMP_SPINCOUNT in: ${r.stderr}`;
  };
  assert.equal(spin({}), '10000');
  assert.equal(spin({ GOMP_SPINCOUNT: '123' }), '123');
  assert.notEqual(spin({ OMP_WAIT_POLICY: 'ACTIVE' }), '10000');
});

test('typed arrays round-trip for every supported dtype', () => {
  const cases: [ArrayBufferView & ArrayLike<number | bigint>, string][] = [
    [new Float32Array([1.5, -2, 3]), 'float32'], [new Float64Array([1e-300, 2, -3]), 'float64'],
    [new Int32Array([1, -2, 2147483647]), 'int32'], [new BigInt64Array([1n, -2n, 9007199254740993n]), 'int64'],
    [new Uint8Array([0, 255, 7]), 'uint8'],
  ];
  for (const [arr, dt] of cases) {
    const t = T.tensor(arr, [3]);
    assert.equal(t.dtype, dt);
    assert.deepEqual(Array.from(t.toArray() as ArrayLike<number | bigint>), Array.from(arr));
    t.dispose();
  }
});

test('zero-copy view shares the tensor memory', () => {
  const t = T.zeros([2, 3]);
  const v = t.view_() as Float32Array;
  v[4] = 7;
  assert.equal(t.sum().item(), 7);
  T.noGrad(() => t.add_(1));
  assert.equal(v[0], 1);
});

test('broadcast arithmetic, reductions and indexing match hand computation', () => {
  T.scope(() => {
    const a = T.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const b = T.tensor([10, 20, 30], [3]);
    assert.deepEqual(a.add(b).toList(), [11, 22, 33, 14, 25, 36]);
    assert.deepEqual(a.mul(2).sub(1).toList(), [1, 3, 5, 7, 9, 11]);
    assert.deepEqual(a.sum(1).toList(), [6, 15]);
    assert.deepEqual(a.mean(0).toList(), [2.5, 3.5, 4.5]);
    assert.deepEqual(a.var(1, false).toList().map((x) => +x.toFixed(6)), [0.666667, 0.666667]);
    assert.deepEqual(a.var(1).toList(), [1, 1]);
    assert.deepEqual(a.argmax(1).toList(), [2, 2]);
    assert.deepEqual(a.matmul(a.t()).toList(), [14, 32, 32, 77]);
    assert.deepEqual(a.transpose(0, 1).contiguous().toList(), [1, 4, 2, 5, 3, 6]);
    assert.deepEqual(a.index([T.tensor([1, 0], [2], 'int64')]).toList(), [4, 5, 6, 1, 2, 3]);
    assert.deepEqual(a.maskedFill(a.gt(3), 0).toList(), [1, 2, 3, 0, 0, 0]);
    assert.deepEqual(a.gather(1, T.tensor([2, 0], [2, 1], 'int64')).toList(), [3, 4]);
    assert.deepEqual(T.zeros([2, 3]).scatter(1, T.tensor([1, 2], [2, 1], 'int64'), 5).toList(), [0, 5, 0, 0, 0, 5]);
    assert.deepEqual(T.cat([a, a], 0).shape, [4, 3]);
    assert.deepEqual(T.stack([a, a], 1).shape, [2, 2, 3]);
    assert.deepEqual(a.reshape(3, 2).permute(1, 0).shape, [2, 3]);
    assert.deepEqual(a.clamp(2, 5).toList(), [2, 2, 3, 4, 5, 5]);
    assert.deepEqual(T.where(a.gt(3), a, 0).toList(), [0, 0, 0, 4, 5, 6]);
    assert.deepEqual(T.F.softmax(T.tensor([0, 0]), 0).toList(), [0.5, 0.5]);
    const [v, i] = a.max(1);
    assert.deepEqual([v.toList(), i.toList()], [[3, 6], [2, 2]]);
    assert.equal(a.slice(1, 1, 3).contiguous().toList().join(), '2,3,5,6');
  });
});

test('integer tensors stay integer with integral scalars', () => {
  const t = T.tensor([1, 2, 3], [3], 'int64');
  assert.equal(t.mul(2).dtype, 'int64');
  assert.equal(t.mul(0.5).dtype, 'float32');
});

test('scope frees everything except what it returns', () => {
  const before = T.memoryStats().live;
  const kept = T.scope(() => {
    const a = T.ones([100]);
    const b = a.mul(3);
    a.add(b);
    return { result: b.sum() };
  });
  assert.equal(T.memoryStats().live, before + 1);
  assert.equal(kept.result.item(), 300);
  kept.result.dispose();
  assert.equal(T.memoryStats().live, before);
});

test('scope frees its tensors when the function throws', () => {
  const before = T.memoryStats().live;
  assert.throws(() => T.scope(() => { T.ones([3]); throw new Error('boom'); }), /boom/);
  assert.equal(T.memoryStats().live, before);
});

test('autograd: backward, grads, noGrad and inferenceMode', () => {
  const w = T.tensor([1, 2, 3]).requiresGrad_();
  const loss = w.mul(w).sum();
  loss.backward();
  assert.deepEqual(w.grad!.toList(), [2, 4, 6]);
  const r = T.noGrad(() => w.mul(2));
  assert.equal(r.requiresGrad, false);
  assert.equal(T.isGradEnabled(), true);
  const s = T.inferenceMode(() => w.mul(2).sum().item());
  assert.equal(s, 12);
  assert.throws(() => T.inferenceMode(() => { throw new Error('inner'); }), /inner/);
  assert.equal(T.isGradEnabled(), true);
});

test('manual seed makes random draws repeatable; deterministic mode toggles', () => {
  T.manualSeed(42);
  const a = T.randn([5]).toList();
  T.manualSeed(42);
  assert.deepEqual(T.randn([5]).toList(), a);
  T.setDeterministic(true);
  T.setDeterministic(false);
});

test('errors name the operator and shapes instead of crashing', () => {
  const a = T.zeros([2, 3]), b = T.zeros([4, 5]);
  assert.throws(() => a.mm(b), (e: Error) => /aten::mm/.test(e.message) && /\[2, 3\]/.test(e.message) && /\[4, 5\]/.test(e.message));
  assert.throws(() => a.add(b), /aten::add\.Tensor/);
  assert.throws(() => T.callOp('aten::no_such_op', '', a), /unknown operator aten::no_such_op/);
  assert.throws(() => T.callOp('aten::add', 'bogus', a, a), /overloads: .*Tensor/);
  assert.throws(() => T.F.conv2d(T.zeros([1, 3, 8, 8]), T.zeros([4, 2, 3, 3])), /aten::conv2d/);
  assert.throws(() => T.F.crossEntropy(T.zeros([2, 3]), T.tensor([0.5, 1])), /cross_entropy/);
  assert.throws(() => T.callOp('aten::add', 'Tensor', a, 'x'), /argument 'other'/);
  const c = T.ones([1]);
  c.dispose();
  assert.throws(() => c.add(1), /disposed/);
  assert.throws(() => T.tensor(new Float32Array(3), [2, 2]), /12 bytes given, shape needs 16/);
});

test('escape hatch calls any operator by schema name with keyword arguments', () => {
  const x = T.tensor([0, 1]);
  assert.deepEqual(T.callOp('aten::erf', '', x).toList().map((v: number) => +v.toFixed(4)), [0, 0.8427]);
  assert.deepEqual(T.callOp('aten::add', 'Tensor', x, x, { alpha: 3 }).toList(), [0, 4]);
  assert.match(T.op('aten::conv2d').schema, /int\[2\] stride=1/);
});

test('the caching allocator reuses freed blocks of the same size', () => {
  T.emptyCache();
  assert.equal(T.allocatorStats().caching, true);
  assert.equal(T.allocatorStats().cachedBytes, 0);
  const a = T.zeros([256, 1024]); // 1 MiB
  a.dispose();
  assert.equal(T.allocatorStats().cachedBytes, 2 ** 20);
  const b = T.ones([1024, 256]);
  assert.equal(T.allocatorStats().cachedBytes, 0, 'the cached block was reused');
  assert.equal(b.sum().item(), 2 ** 18, 'reused memory holds the new values');
  b.dispose();
  T.emptyCache();
  assert.equal(T.allocatorStats().cachedBytes, 0);
});

test('channelsLast gives channels-last strides, a 1-channel batch included, with the same values', () => {
  for (const c of [1, 3]) {
    const x = T.randn([2, c, 5, 4]);
    assert.equal(x.memoryFormat, T.MemoryFormat.contiguous);
    const y = x.channelsLast();
    assert.equal(y.memoryFormat, T.MemoryFormat.channelsLast, `${c} channel(s): libtorch takes it as channels-last`);
    assert.ok(y.isContiguous(T.MemoryFormat.channelsLast));
    assert.deepEqual(y.shape, x.shape);
    assert.deepEqual(y.toList(), x.toList());
    // a convolution keeps the layout: what follows the first layer runs channels-last too
    const out = T.F.conv2d(y, T.randn([8, c, 3, 3]), null, { padding: 1 });
    assert.equal(out.memoryFormat, T.MemoryFormat.channelsLast, `${c} channel(s): the convolution's output is channels-last`);
    for (const t of [x, y, out]) t.dispose();
  }
});
