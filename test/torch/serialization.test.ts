import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as T from '../../src/torch';
import { python, tmpDir } from '../helpers';

test('safetensors round-trips every dtype, shape and metadata', () => {
  const dir = tmpDir('st');
  const file = path.join(dir, 'm.safetensors');
  const tensors = new Map<string, T.Tensor>([
    ['w', T.randn([3, 4, 2])], ['d', T.randn([2], { dtype: 'float64' })], ['i', T.tensor([1, -5, 7], [3], 'int64')],
    ['u', T.tensor([0, 200], [2], 'uint8')], ['h', T.randn([5]).to('float16')], ['s', T.scalar(3, 'int64')], ['e', T.zeros([0, 3])],
  ]);
  T.saveSafetensors(file, tensors, { format: 'pt', note: 'x' });
  const back = T.loadSafetensors(file);
  assert.deepEqual(back.metadata, { format: 'pt', note: 'x' });
  assert.deepEqual([...back.tensors.keys()], [...tensors.keys()]);
  for (const [k, t] of tensors) {
    const b = back.tensors.get(k)!;
    assert.equal(b.dtype, t.dtype, k);
    assert.deepEqual(b.shape, t.shape, k);
    assert.deepEqual(Buffer.compare(b.bytes(), t.bytes()), 0, k);
  }
  assert.deepEqual(fs.readdirSync(dir), ['m.safetensors'], 'no temporary files left');
  fs.rmSync(dir, { recursive: true });
});

test('corrupt safetensors files give errors naming the file and the field', () => {
  const dir = tmpDir('stbad');
  const file = path.join(dir, 'bad.safetensors');
  const good = Buffer.concat(T.encodeSafetensors({ w: T.ones([4]) }));
  const cases: [Buffer, RegExp][] = [
    [good.subarray(0, 5), /too short/],
    [good.subarray(0, good.length - 3), /'w'.*beyond the data.*truncated/],
    [Buffer.concat([Buffer.from([255, 0, 0, 0, 0, 0, 0, 0]), good.subarray(8)]), /header length 255 exceeds/],
    [Buffer.from(good.toString('latin1').replace('"F32"', '"Q32"'), 'latin1'), /unknown dtype 'Q32' for tensor 'w' in .*bad\.safetensors/],
    [Buffer.from(good.toString('latin1').replace('[4]', '[5]'), 'latin1'), /'w': data_offsets span 16 bytes, shape \[5\]/],
    [Buffer.from(good.toString('latin1').replace('{', '['), 'latin1'), /not valid JSON|not a JSON object/],
  ];
  for (const [bytes, re] of cases) {
    fs.writeFileSync(file, bytes);
    assert.throws(() => T.loadSafetensors(file), (e: Error) => e.message.includes(file) && re.test(e.message), String(re));
  }
  assert.throws(() => T.loadSafetensors(path.join(dir, 'missing.safetensors')), /cannot read .*missing\.safetensors/);
  fs.rmSync(dir, { recursive: true });
});

test('torch.save files load without executing code; hostile pickles are refused', () => {
  const dir = tmpDir('pt');
  python('torch_ref.py', 'checkpoints', dir);
  const sd = T.loadTorchStateDict(path.join(dir, 'checkpoint.pt'));
  assert.deepEqual([...sd.keys()], ['a', 'b', 'h', 'i'], "'module.' prefix removed, nested dict found");
  assert.deepEqual(sd.get('a')!.toList(), Array.from({ length: 12 }, (_, i) => i));
  assert.deepEqual(sd.get('b')!.shape, [2, 2]);
  assert.deepEqual(sd.get('b')!.toList(), [4, 6, 8, 10], 'strided view of a shared storage');
  assert.equal(sd.get('h')!.dtype, 'float16');
  assert.deepEqual(sd.get('h')!.float().toList(), sd.get('a')!.toList());
  assert.deepEqual(sd.get('i')!.toList(), [1, -2]);
  const whole = T.loadTorch(path.join(dir, 'checkpoint.pt')) as Map<string, unknown>;
  assert.equal(whole.get('epoch'), 3);
  assert.equal(whole.get('lr'), 0.5);
  assert.equal(whole.get('name'), 'x');
  assert.throws(() => T.loadTorch(path.join(dir, 'evil.pt')), /evil\.pt: refusing to load global '(__builtin__|builtins)\.print'/);
  const lin = T.loadTorchStateDict(path.join(dir, 'linear.pt'));
  assert.deepEqual([...lin.keys()], ['weight', 'bias']);
  const trunc = path.join(dir, 'trunc.pt');
  fs.writeFileSync(trunc, fs.readFileSync(path.join(dir, 'linear.pt')).subarray(0, 200));
  assert.throws(() => T.loadTorch(trunc), /trunc\.pt: not a zip archive/);
  fs.rmSync(dir, { recursive: true });
});
