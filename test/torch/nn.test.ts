import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as T from '../../src/torch';
import { nn } from '../../src/torch';
import { ResNet18 } from '../../src/models/resnet';
import { createModel } from '../../src/models';

test('ResNet-18 parameter and buffer names follow the PyTorch CIFAR ResNet', () => {
  const m = new ResNet18({ width: 8, inChannels: 1 });
  const keys = [...m.stateDict().keys()];
  assert.equal(keys.length, 122);
  for (const k of ['conv1.weight', 'bn1.running_mean', 'bn1.num_batches_tracked', 'layer1.0.conv1.weight', 'layer2.0.shortcut.0.weight',
    'layer2.0.shortcut.1.running_var', 'layer4.1.bn2.bias', 'linear.weight', 'linear.bias'])
    assert.ok(keys.includes(k), k);
  assert.ok(!keys.includes('layer1.0.shortcut.0.weight'), 'identity shortcut has no parameters');
  assert.deepEqual(m.getModule('layer2.0.shortcut.0').constructor.name, 'Conv2d');
  assert.equal(m.stateDict().get('bn1.num_batches_tracked')!.dtype, 'int64');
  m.dispose();
});

test('BatchNorm updates running statistics only in training mode', () => {
  const bn = new nn.BatchNorm2d(2);
  const x = T.randn([8, 2, 3, 3]).mul(3).add(5);
  bn.eval();
  T.noGrad(() => bn.call(x));
  assert.deepEqual(bn.runningMean.toList(), [0, 0]);
  bn.train();
  T.noGrad(() => bn.call(x));
  const mean = x.mean([0, 2, 3]).mul(0.1).toList();
  bn.runningMean.toList().forEach((v, i) => assert.ok(Math.abs(v - mean[i]) < 1e-5));
  assert.equal(bn.numBatchesTracked.item(), 1);
});

test('forward hooks capture any layer output and can be removed', () => {
  const m = new ResNet18({ width: 4, inChannels: 1 });
  const seen: number[][] = [];
  const h = m.getModule('layer3.1.conv2').registerForwardHook((_mod, _in, out) => { seen.push(out.shape); });
  T.noGrad(() => m.call(T.randn([2, 1, 16, 16])));
  assert.deepEqual(seen, [[2, 16, 4, 4]]);
  h.remove();
  T.noGrad(() => m.call(T.randn([2, 1, 16, 16])));
  assert.equal(seen.length, 1);
});

test('a channel mask silences exactly the masked channels', () => {
  const conv = new nn.Conv2d(1, 3, 3, { padding: 1 });
  conv.channelMask = T.tensor([1, 0, 1]);
  const y = T.noGrad(() => conv.call(T.randn([2, 1, 5, 5])));
  assert.equal(y.select(1, 1).abs().sum().item(), 0);
  assert.ok(y.select(1, 0).abs().sum().item() > 0);
});

test('loadStateDict reports mismatches by key', () => {
  const a = new nn.Linear(3, 2);
  const b = new nn.Linear(4, 2);
  assert.throws(() => a.loadStateDict(b.stateDict()), /'weight' has shape \[2,4\] but the model expects \[2,3\]/);
  assert.throws(() => a.loadStateDict(new Map([['weight', a.weight]])), /missing keys \[bias\]/);
  const c = new nn.Linear(3, 2);
  c.loadStateDict(a.stateDict());
  assert.deepEqual(c.weight.toList(), a.weight.toList());
});

test('train/eval switches every submodule; Dropout obeys it', () => {
  const m = new nn.Sequential(new nn.Linear(4, 4), new nn.Dropout(0.5));
  m.eval();
  assert.ok(m.namedModules().every(([, x]) => !x.training));
  const x = T.ones([1, 4]);
  assert.deepEqual(T.noGrad(() => m.layers[1].call(x)).toList(), [1, 1, 1, 1]);
  m.train();
  T.manualSeed(0);
  const y = T.noGrad(() => m.layers[1].call(T.ones([1, 1000])));
  const zeros = (y.toArray() as Float32Array).filter((v) => v === 0).length;
  assert.ok(zeros > 400 && zeros < 600, `dropout zeroed ${zeros}/1000`);
});

test('PreAct-ResNet-18 has the names of the BackdoorBench model and runs on 1 and 3 channels', async () => {
  const { PreActResNet18 } = await import('../../src/models/preact-resnet');
  const m = new PreActResNet18({ width: 4, inChannels: 3 });
  const keys = [...m.stateDict().keys()];
  for (const k of ['conv1.weight', 'layer1.0.bn1.weight', 'layer1.0.conv1.weight', 'layer1.0.bn2.running_var', 'layer2.0.shortcut.0.weight', 'layer4.1.conv2.weight', 'linear.bias'])
    assert.ok(keys.includes(k), k);
  assert.ok(!keys.includes('bn1.weight') && !keys.includes('layer1.0.shortcut.0.weight'));
  assert.deepEqual(T.noGrad(() => m.eval().call(T.randn([2, 3, 32, 32]))).shape, [2, 10]);
  const g = new PreActResNet18({ width: 4, inChannels: 1 });
  assert.deepEqual(T.noGrad(() => g.eval().call(T.randn([2, 1, 28, 28]))).shape, [2, 10]);
});

test('the engine folds a folding Sequential\'s conv and batch norm in inference only where nothing intercepts them', () => {
  T.manualSeed(3);
  const conv = new nn.Conv2d(3, 8, 3, { padding: 1 }), bn = new nn.BatchNorm2d(8), seq = nn.Sequential.folding(conv, bn);
  const x = T.randn([4, 3, 10, 10]);
  seq.train();
  for (let i = 0; i < 3; i++) T.noGrad(() => seq.call(T.randn([4, 3, 10, 10]).mul(2).add(1))).dispose(); // running statistics away from 0 and 1
  seq.eval();
  const unfused = T.noGrad(() => { const c = conv.forward(x); const y = bn.forward(c); c.dispose(); return y; });
  const fused = T.noGrad(() => seq.call(x));
  const diff = fused.sub(unfused).abs().amax().item(), scale = unfused.abs().amax().item();
  assert.ok(diff <= 1e-5 * scale, `fused within float rounding of conv then bn: ${diff} of ${scale}`);
  // what intercepts a module keeps it out of the fusion: a hook sees the conv's output, a replaced forward runs
  let seen: number[] | null = null;
  const h = conv.registerForwardHook((_m, _i, out) => { seen = out.shape; });
  T.noGrad(() => seq.call(x)).dispose();
  assert.deepEqual(seen, [4, 8, 10, 10]);
  h.remove();
  assert.equal(bn.intercepted, false);
  bn.forward = (t: T.Tensor): T.Tensor => T.zeros(t.shape);
  assert.equal(bn.intercepted, true, 'a forward replaced on the instance intercepts');
  assert.equal(T.noGrad(() => seq.call(x)).abs().amax().item(), 0, 'the replaced forward ran');
  Reflect.deleteProperty(bn, 'forward');
  assert.equal(bn.intercepted, false);
  for (const t of [x, unfused, fused]) t.dispose();
  seq.dispose();
});

test('clone gives an independent model: the same outputs, its own tensors, no hooks; a replaced forward is refused', () => {
  T.manualSeed(5);
  for (const name of ['resnet18', 'mobilenet_v3_small', 'convnext_tiny', 'densenet121'] as const) {
    const model = createModel({ name, width: 8, inChannels: 1, numClasses: 10, imageSize: 32 });
    const x = T.randn([2, 1, 32, 32]);
    model.train();
    T.noGrad(() => model.call(x)).dispose(); // running statistics away from their start
    model.eval();
    let hooked = 0;
    const first = model.namedModules().find(([, m]) => m instanceof nn.Conv2d)![0];
    model.getModule(first).registerForwardHook(() => { hooked++; });
    const c = model.clone();
    assert.equal(c.constructor, model.constructor, name);
    assert.deepEqual([...c.stateDict().keys()], [...model.stateDict().keys()], `${name}: the same state-dict names`);
    assert.ok(c.namedModules().every(([, m]) => !m.training), `${name}: training flags copied`);
    const want = T.noGrad(() => model.call(x)), got = T.noGrad(() => c.call(x));
    assert.equal(hooked, 1, `${name}: the clone runs without the original's hooks`);
    const diff = got.sub(want).abs().amax().item();
    assert.ok(diff <= 1e-5 * want.abs().amax().item(), `${name}: the clone's outputs are the original's (${diff})`);
    const own = new Set(model.stateDict().values());
    assert.ok([...c.stateDict().values()].every((t) => !own.has(t)), `${name}: every tensor is the clone's own`);
    assert.ok(c.parameters().every((p) => p.requiresGrad), `${name}: parameters still require grad`);
    // training the clone leaves the original as it was
    c.train();
    T.F.crossEntropy(c.call(x), T.tensor([1, 2], [2]).long()).backward();
    T.noGrad(() => { for (const p of c.parameters()) if (p.grad) p.sub_(p.grad.sign().mul(0.01)); });
    c.eval();
    const again = T.noGrad(() => model.call(x)), moved = T.noGrad(() => c.call(x));
    assert.equal(again.sub(want).abs().amax().item(), 0, `${name}: the original is untouched`);
    assert.ok(moved.sub(want).abs().amax().item() > 1e-3, `${name}: the clone moved`);
    for (const t of [x, want, got, again, moved]) t.dispose();
    model.dispose(); c.dispose();
  }
  const m = new ResNet18({ width: 4, inChannels: 1 });
  m.getModule('layer1.0.bn1').forward = (t: T.Tensor): T.Tensor => t;
  assert.throws(() => m.clone(), /clone: module 'layer1\.0\.bn1' has its forward replaced/);
  m.dispose();
});
