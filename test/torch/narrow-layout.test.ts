// oneDNN 2.6 corrupts the heap (then aborts or hangs) on a channels-last 1x1 convolution with an even
// stride and 2-7 input channels under AVX2, and 2-15 on AVX-512 on inputs of 48 pixels and more; the
// engine runs such a convolution in NCHW (src/torch/nn.ts).
// Each case runs in a child process, with oneDNN limited to AVX2 and with the machine's own ISA, under
// a timeout, since the failure is a crash or a hang, not a wrong number.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as path from 'path';
import { spawnSync } from 'child_process';
import * as T from '../../src/torch';
import { ResNet18 } from '../../src/models/resnet';

const dist = path.resolve(__dirname, '..', '..', 'src');

const script = `
const T = require(${JSON.stringify(path.join(dist, 'torch'))});
const { ResNet18 } = require(${JSON.stringify(path.join(dist, 'models', 'resnet'))});
const { nn } = T;
T.manualSeed(0);
const relErr = (a, b) => { const d = a.sub(b).abs().amax().item(), s = b.abs().amax().item(); return d / Math.max(s, 1e-12); };
const out = { conv: {}, resnet: {} };
// the crashing shapes themselves: forward and backward three times, channels-last against NCHW; 2-15
// channels on 16x16 (AVX2 crashes for 2-7) and shapes that crash on AVX-512 (channels, side)
const shapes = [...Array.from({ length: 14 }, (_, i) => [i + 2, 16]), [3, 64], [8, 48], [12, 96], [15, 96]];
for (const [c, side] of shapes) {
  const conv = new nn.Conv2d(c, 2 * c, 1, { stride: 2, bias: false });
  const x = T.randn([8, c, side, side]);
  const xl = x.contiguous(T.MemoryFormat.channelsLast);
  let err = 0, layout = -1;
  for (let i = 0; i < 3; i++) {
    const y = conv.call(xl), ref = conv.call(x);
    y.sum().backward();
    err = Math.max(err, relErr(y, ref));
    layout = y.memoryFormat;
  }
  out.conv[c + 'x' + side] = { err, channelsLast: layout === T.MemoryFormat.channelsLast };
}
// a width-4 ResNet-18 on 3-channel images (layer2's shortcut is a 4 -> 8 1x1 stride-2 convolution):
// two training steps, then eval logits of the channels-last model against the NCHW one with its weights
const m = new ResNet18({ width: 4, inChannels: 3, numClasses: 10 });
const opt = new T.optim.SGD(m.parameters(), { lr: 0.01, momentum: 0.9 });
const x = T.randn([16, 3, 32, 32]), y = T.randint(0, 10, [16]);
for (let i = 0; i < 2; i++) { opt.zeroGrad(); T.F.crossEntropy(m.call(x), y).backward(); opt.step(); }
m.eval();
const nchw = new ResNet18({ width: 4, inChannels: 3, numClasses: 10, channelsLast: false });
nchw.loadStateDict(m.stateDict());
nchw.eval();
out.resnet.err = T.noGrad(() => relErr(m.call(x), nchw.call(x)));
console.log(JSON.stringify(out));
`;

for (const isa of ['AVX2', undefined]) {
  test(`narrow channels-last 1x1 strided convolutions run and match NCHW (ONEDNN_MAX_CPU_ISA=${isa ?? 'unset'})`, () => {
    const env: NodeJS.ProcessEnv = { ...process.env, VARDEFENSE_THREADS: '1' };
    if (isa) env.ONEDNN_MAX_CPU_ISA = isa; else delete env.ONEDNN_MAX_CPU_ISA;
    const r = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.signal, null, `child killed by ${r.signal} (a hang or a crash): ${r.stderr.slice(-400)}`);
    assert.equal(r.status, 0, r.stderr.slice(-800));
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { conv: Record<string, { err: number; channelsLast: boolean }>; resnet: { err: number } };
    assert.equal(Object.keys(out.conv).length, 18);
    for (const [shape, { err, channelsLast }] of Object.entries(out.conv)) {
      assert.ok(err < 1e-5, `${shape}: channels-last and NCHW outputs differ by ${err} relative`);
      assert.ok(channelsLast, `${shape}: the output comes back channels-last`);
    }
    assert.ok(out.resnet.err < 1e-4, `width-4 ResNet-18: channels-last and NCHW logits differ by ${out.resnet.err} relative`);
  });
}

test('a 1-channel batch runs channels-last from a stem of 8 channels up, NCHW below (where it trains faster)', () => {
  for (const [width, layout] of [[4, T.MemoryFormat.contiguous], [8, T.MemoryFormat.channelsLast], [16, T.MemoryFormat.channelsLast]]) {
    const m = new ResNet18({ width, inChannels: 1 });
    const seen: number[] = [];
    m.getModule('conv1').registerForwardHook((_m, _in, out) => { seen.push(out.memoryFormat); });
    m.getModule('layer4.1.conv2').registerForwardHook((_m, _in, out) => { seen.push(out.memoryFormat); });
    T.noGrad(() => m.call(T.randn([2, 1, 28, 28])));
    assert.deepEqual(seen, [layout, layout], `width ${width}: first and last convolutions' layout`);
    m.dispose();
  }
});
