// Hostile torch.save archives, pickles and safetensors files: each is refused quickly, with bounded
// memory, by an Error naming the file and the fault.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as T from '../../src/torch';
import { tmpDir } from '../helpers';
import { P, smallTorchFile, statePickle, torchZip } from '../hostile-files';

const floats = (n: number): Buffer => Buffer.from(new Float32Array(n).map((_, i) => i).buffer);

/** Writes `bytes`, reads with `read`, and expects an Error (not Range/TypeError) naming the file and matching `re`, within 2 s. */
function refused(dir: string, bytes: Buffer, read: (f: string) => unknown, re: RegExp, label = String(re)): void {
  const file = path.join(dir, `hostile-${label.replace(/[^a-z0-9]+/gi, '_').slice(0, 40)}.bin`);
  fs.writeFileSync(file, bytes);
  const t0 = Date.now();
  assert.throws(() => read(file), (e: Error) => {
    assert.ok(!(e instanceof RangeError) && !(e instanceof TypeError), `${label}: ${e.constructor.name}: ${e.message}`);
    assert.ok(e.message.includes(file), `${label}: error does not name the file: ${e.message}`);
    assert.match(e.message, re, label);
    return true;
  });
  assert.ok(Date.now() - t0 < 10000, `${label}: took ${Date.now() - t0} ms`); // ~1-2 s worst case alone; a hang or a blow-up takes minutes
}

test('the test archive builder writes a valid torch.save file', () => {
  const dir = tmpDir('ptok');
  const file = path.join(dir, 'ok.pt');
  fs.writeFileSync(file, smallTorchFile());
  const sd = T.loadTorchStateDict(file);
  assert.deepEqual(sd.get('w')!.shape, [2, 3]);
  assert.deepEqual(sd.get('w')!.toList(), [0, 1, 2, 3, 4, 5]);
  fs.rmSync(dir, { recursive: true });
});

test('expanded, overlapping and out-of-bounds views are refused before libtorch sees them', () => {
  const dir = tmpDir('ptview');
  const rss0 = process.memoryUsage().rss;
  const view = (numel: number, offset: number, size: number[], stride: number[]): Buffer =>
    torchZip(statePickle([{ storage: '0', numel, offset, size, stride }]), { 0: floats(numel) });
  const stride0 = view(1, 0, [1 << 30], [0]);
  assert.ok(stride0.length < 1000, `a ${stride0.length}-byte file`);
  refused(dir, stride0, T.loadTorch, /storage '0'.*1073741824 elements, more than its 1-element storage/, 'stride-0 view of one element (4 GB if materialised)');
  refused(dir, view(1, 0, [1 << 20, 1 << 20, 1 << 10], [0, 0, 0]), T.loadTorch, /more than its 1-element storage/, 'stride-0 view beyond bad_alloc size');
  refused(dir, view(2, 0, [2, 2], [0, 1]), T.loadTorch, /4 elements, more than its 2-element storage/, 'overlapping view');
  refused(dir, view(6, 1, [2, 3], [3, 1]), T.loadTorch, /reaches element 6 of a 6-element storage/, 'offset pushes the view past the storage');
  refused(dir, view(6, 0, [2, 3], [4, 1]), T.loadTorch, /reaches element 6 of a 6-element storage/, 'strides past the storage');
  refused(dir, view(6, 7, [0], [1]), T.loadTorch, /offset 7 beyond/, 'empty view past the storage');
  refused(dir, view(6, 0, [2, 3], [1]), T.loadTorch, /bad size\/stride/, 'size and stride of different lengths');
  refused(dir, view(6, -1, [2], [1]), T.loadTorch, /bad storage offset -1/, 'negative offset');
  refused(dir, torchZip(statePickle([{ storage: '0', numel: 600, offset: 0, size: [6], stride: [1] }]), { 0: floats(6) }), T.loadTorch,
    /storage '0' has 24 bytes, expected 2400/, 'storage shorter than declared');
  // many full views of one storage: bounded by a multiple of the file size
  const many = statePickle(Array.from({ length: 200 }, (_, i) => ({ key: `w${i}`, storage: '0', numel: 1 << 18, offset: 0, size: [1 << 18], stride: [1] })));
  refused(dir, torchZip(many, { 0: floats(1 << 18) }), T.loadTorch, /would exceed \d+ bytes/, '200 views of a 1 MB storage');
  assert.ok(process.memoryUsage().rss - rss0 < 200 * 2 ** 20, `RSS grew by ${(process.memoryUsage().rss - rss0) / 2 ** 20} MB`);
  fs.rmSync(dir, { recursive: true });
});

/** Finds central-directory entry `i` of a zip and overwrites a field in it. */
function patchCentral(zip: Buffer, i: number, field: number, value: number, bytes: 2 | 4): Buffer {
  const b = Buffer.from(zip);
  let p = b.readUInt32LE(b.length - 22 + 16);
  for (let k = 0; k < i; k++) p += 46 + b.readUInt16LE(p + 28) + b.readUInt16LE(p + 30) + b.readUInt16LE(p + 32);
  if (bytes === 2) b.writeUInt16LE(value, p + field); else b.writeUInt32LE(value, p + field);
  return b;
}

test('every zip field is bounds-checked', () => {
  const dir = tmpDir('ptzip');
  const good = smallTorchFile();
  refused(dir, patchCentral(good, 0, 30, 0xffff, 2), T.loadTorch, /extra field and comment of central directory entry 0 .*outside/, 'extra-field length 0xFFFF');
  refused(dir, patchCentral(good, 2, 32, 0xffff, 2), T.loadTorch, /outside/, 'comment length 0xFFFF');
  refused(dir, patchCentral(good, 0, 20, 5, 4), T.loadTorch, /compressed size 5 differs/, 'compressed size');
  refused(dir, patchCentral(good, 1, 42, 0x7fffffff, 4), T.loadTorch, /local header of 'archive\/byteorder' at offset 2147483647/, 'local header offset');
  refused(dir, patchCentral(good, 0, 10, 8, 2), T.loadTorch, /'archive\/data.pkl' is compressed \(method 8\)/, 'deflated entry');
  refused(dir, patchCentral(good, 2, 24, 0x7ffffff0, 4), T.loadTorch, /compressed size .* differs|extends past the end/, 'size past the end');
  const eocd = Buffer.from(good);
  eocd.writeUInt16LE(0xfffe, eocd.length - 22 + 10);
  refused(dir, eocd, T.loadTorch, /65534 entries, more than the file can hold|corrupt central directory/, 'entry count');
  const cd = Buffer.from(good);
  cd.writeUInt32LE(0xfffffff0, cd.length - 22 + 16);
  refused(dir, cd, T.loadTorch, /zip64 locator missing|outside/, 'central directory offset');
  // zip64 extra field claiming an 8 EB size
  const z64 = torchZip(statePickle([{ storage: '0', numel: 6, offset: 0, size: [2, 3], stride: [3, 1] }]), { 0: floats(6) },
    (name) => {
      if (name !== 'archive/data/0') return Buffer.alloc(0);
      const x = Buffer.alloc(12);
      x.writeUInt16LE(1, 0); x.writeUInt16LE(8, 2); x.writeBigUInt64LE(0x7fffffffffffffffn, 4);
      return x;
    });
  const z64patched = patchCentral(patchCentral(z64, 2, 24, 0xffffffff, 4), 2, 20, 0xffffffff, 4);
  refused(dir, z64patched, T.loadTorch, /zip64 (size|field).*'archive\/data\/0'|exceeds the \d+-byte file/, 'zip64 size');
  fs.rmSync(dir, { recursive: true });
});

test('pickles are read iteratively, bounded, and may never name an inherited or unlisted global', () => {
  const dir = tmpDir('ptpkl');
  const file = path.join(dir, 'appends.pt');
  const n = 200_000;
  fs.writeFileSync(file, torchZip(Buffer.concat([P.proto, P.emptyList, P.mark, Buffer.alloc(n, 'N'), P.appends, P.stop]), {}));
  const list = T.loadTorch(file) as unknown[];
  assert.equal(list.length, n, '200k APPENDS: no "Maximum call stack size exceeded"');
  const deep = Buffer.concat([P.proto, Buffer.alloc(n, ']'), Buffer.alloc(n - 1, 'a'), P.stop]);
  fs.writeFileSync(file, torchZip(deep, {}));
  assert.ok(Array.isArray(T.loadTorch(file)), 'lists nested 200k deep');
  refused(dir, torchZip(Buffer.concat([P.proto, Buffer.alloc(600_000, 'N'), P.stop]), {}), T.loadTorch, /stack grows beyond 500000 items/, 'stack of 600k items');
  refused(dir, torchZip(Buffer.concat([P.proto, P.emptyList, Buffer.alloc(2_200_000, 'Na'), P.stop]), {}), T.loadTorch, /more than 1000000 opcodes/, '1.1M opcodes');
  for (const [m, name] of [['torch', 'constructor'], ['torch', '__proto__'], ['torch', 'toString'], ['torch', 'hasOwnProperty'],
    ['collections', 'constructor'], ['builtins', 'eval'], ['os', 'system'], ['torch._utils', '__proto__']]) {
    const pkl = Buffer.concat([P.proto, P.global(m, name), P.stop]);
    refused(dir, torchZip(pkl, {}), T.loadTorch, new RegExp(`refusing to load global '${m}\\.${name}'`), `${m}.${name}`);
  }
  // an allowed-looking storage class that is an inherited name, in the persistent id
  refused(dir, torchZip(statePickle([{ storage: '0', dtype: 'constructor', numel: 6, offset: 0, size: [6], stride: [1] }]), { 0: floats(6) }),
    T.loadTorch, /refusing to load global 'torch\.constructor'/, 'storage class torch.constructor');
  for (const key of [5, null]) {
    const pkl = statePickle([{ key, storage: '0', numel: 6, offset: 0, size: [6], stride: [1] }]);
    refused(dir, torchZip(pkl, { 0: floats(6) }), T.loadTorchStateDict, new RegExp(`state dict key ${key === null ? 'None \\(null\\)' : '5 \\(number\\)'} is not a string`), `key ${key}`);
  }
  fs.rmSync(dir, { recursive: true });
});

test('hostile safetensors headers are refused naming the file, field and tensor', () => {
  const dir = tmpDir('sthostile');
  const st = (header: string, data: Buffer = Buffer.alloc(0)): Buffer => {
    const h = Buffer.alloc(8);
    h.writeBigUInt64LE(BigInt(Buffer.byteLength(header)));
    return Buffer.concat([h, Buffer.from(header), data]);
  };
  const w = '"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}';
  const ok = path.join(dir, 'ok.safetensors');
  fs.writeFileSync(ok, st(`{${w},"__metadata__":{"a":"b","__proto__":"x"}}`, Buffer.alloc(8)));
  const back = T.loadSafetensors(ok);
  assert.deepEqual(back.tensors.get('w')!.toList(), [0, 0]);
  assert.equal(Object.getOwnPropertyDescriptor(back.metadata, '__proto__')?.value, 'x', '__proto__ is an own key, not the prototype');
  const cases: [string, Buffer, RegExp][] = [
    ['metadata a number', st(`{${w},"__metadata__":5}`, Buffer.alloc(8)), /__metadata__ is 5, not an object of strings/],
    ['metadata an array', st(`{${w},"__metadata__":["a"]}`, Buffer.alloc(8)), /__metadata__ is \["a"\]/],
    ['metadata value not a string', st(`{${w},"__metadata__":{"k":{"x":1}}}`, Buffer.alloc(8)), /__metadata__ 'k' is \{"x":1\}, not a string/],
    ['dtype constructor', st('{"w":{"dtype":"constructor","shape":[2],"data_offsets":[0,8]}}', Buffer.alloc(8)), /unknown dtype 'constructor' for tensor 'w' in /],
    ['dtype toString', st('{"w":{"dtype":"toString","shape":[2],"data_offsets":[0,8]}}', Buffer.alloc(8)), /unknown dtype 'toString' for tensor 'w' in [^{]*$/],
    ['duplicate tensor', st(`{${w},${w}}`, Buffer.alloc(8)), /header has the key 'w' twice/],
    ['duplicate field', st('{"w":{"dtype":"F32","shape":[2],"shape":[2],"data_offsets":[0,8]}}', Buffer.alloc(8)), /key 'shape' twice/],
    ['duplicate escaped', st(`{${w},"\\u0077":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, Buffer.alloc(8)), /key 'w' twice/],
    ['overlap', st(`{${w},"v":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, Buffer.alloc(8)), /overlaps another tensor/],
    ['hole', st('{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', Buffer.alloc(16)), /bytes 0\.\.8 before tensor 'w' belong to no tensor/],
    ['trailing', st(`{${w}}`, Buffer.alloc(12)), /4 bytes after the last tensor/],
    ['out of range', st('{"w":{"dtype":"F32","shape":[2],"data_offsets":[4096,4104]}}', Buffer.alloc(8)), /data_offsets end 4104 beyond the data/],
    ['huge shape', st('{"w":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8]}}', Buffer.alloc(8)), /shape \[1099511627776,1099511627776\] of float32 needs/],
    ['entry not an object', st('{"w":7}'), /tensor 'w': entry is 7/],
    ['header past the file', Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 0x7f]), Buffer.from('{}')]), /header length \d+ exceeds the file size 10/],
    ['header JSON array', st('[1,2]'), /not a JSON object/],
  ];
  for (const [label, bytes, re] of cases) refused(dir, bytes, T.loadSafetensors, re, label);
  fs.rmSync(dir, { recursive: true });
});

test('deeply nested or huge untrusted values give a short error, not a stack overflow', () => {
  const dir = tmpDir('deep');
  const n = 100_000;
  const nested = Buffer.concat([Buffer.alloc(n, ']'), Buffer.alloc(n - 1, 'a')]);
  // a nested list as a state dict key, and as a tensor's size
  const asKey = statePickle([{ key: nested, storage: '0', numel: 1, offset: 0, size: [1], stride: [1] }]);
  refused(dir, torchZip(asKey, { 0: Buffer.alloc(4) }), T.loadTorchStateDict, /state dict key (a list of 1 items|\[\[\[.{0,90}) \(object\) is not a string/, 'nested key');
  const asSize = Buffer.concat([P.proto, P.global('torch._utils', '_rebuild_tensor_v2'), P.mark,
    P.tupleOf(P.str('storage'), P.global('torch', 'FloatStorage'), P.str('0'), P.str('cpu'), P.int(1)), P.binpersid, P.int(0), nested, nested, P.tuple, P.reduce, P.stop]);
  refused(dir, torchZip(asSize, { 0: Buffer.alloc(4) }), T.loadTorch, /bad size\/stride \(a list of 1 items|bad size\/stride \(\[\[\[/, 'nested size');
  const h = (json: string): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(json.length)); return Buffer.concat([b, Buffer.from(json)]); };
  refused(dir, h(`{"w":${'['.repeat(n)}${']'.repeat(n)}}`), T.loadSafetensors, /nests deeper than 64 levels/, 'nested JSON');
  refused(dir, h(`{"w":{"dtype":${'['.repeat(50)}${']'.repeat(50)}}}`), T.loadSafetensors, /unknown dtype '\[\[\[.{0,80}\.\.\.' for tensor 'w'/, 'nested dtype');
  refused(dir, h(`{"w":{"dtype":"${'x'.repeat(1 << 20)}"}}`), T.loadSafetensors, /unknown dtype 'x{80}\.\.\.' for tensor 'w'/, 'huge dtype');
  fs.rmSync(dir, { recursive: true });
});

test('a safetensors header is checked before the data is read: a lying 1 GiB file costs only its header', () => {
  const dir = tmpDir('stbig');
  const file = path.join(dir, 'big.safetensors');
  const rss0 = process.memoryUsage().rss;
  for (const [header, re] of [['', /header is not valid JSON/], ['{}', /data section has 1073741814 bytes after the last tensor/]] as [string, RegExp][]) {
    const head = Buffer.alloc(8 + header.length);
    head.writeBigUInt64LE(BigInt(header.length));
    head.write(header, 8);
    fs.writeFileSync(file, head);
    fs.truncateSync(file, 2 ** 30); // sparse: no disk used
    assert.throws(() => T.loadSafetensors(file), (e: Error) => e.message.startsWith(`${file}: `) && re.test(e.message), String(re));
  }
  const mb = (process.memoryUsage().rss - rss0) / 2 ** 20;
  assert.ok(mb < 100, `RSS grew by ${mb.toFixed(0)} MB`);
  fs.rmSync(dir, { recursive: true });
});

test('tensors a pickle builds but does not return are freed; self-referencing lists load', () => {
  const dir = tmpDir('ptgc');
  const file = path.join(dir, 'g.pt');
  // a list holding itself (via the memo), and a tensor built then replaced in the dict
  const spec = { storage: '0', numel: 6, offset: 0, size: [6], stride: [1] };
  const twice = statePickle([spec, spec]);
  const selfRef = Buffer.concat([P.proto, P.emptyList, Buffer.from([0x71, 0]), Buffer.from([0x68, 0]), P.append, P.stop]);
  fs.writeFileSync(file, torchZip(selfRef, {}));
  const l = T.loadTorch(file) as unknown[];
  assert.equal(l[0], l, 'the list contains itself');
  fs.writeFileSync(file, torchZip(twice, { 0: floats(6) }));
  const before = T.memoryStats().live;
  const sd = T.loadTorchStateDict(file);
  assert.equal(sd.size, 1);
  assert.equal(T.memoryStats().live - before, 1, 'only the returned tensor is alive');
  sd.get('w')!.dispose();
  fs.rmSync(dir, { recursive: true });
});
