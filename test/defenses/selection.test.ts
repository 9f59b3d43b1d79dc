import { test } from 'node:test';
import * as assert from 'assert/strict';
import { ResNet18 } from '../../src/models/resnet';
import { convUnits, lastUnits, lowestChannels, lowestChannelsNetworkWise, thresholdAt } from '../../src/defenses/selection';

test('conv layers come in module order with the batch norm that follows each', () => {
  const m = new ResNet18({ width: 4, inChannels: 1 });
  const units = convUnits(m);
  assert.equal(units.length, 20);
  assert.equal(units[0].name, 'conv1');
  assert.equal(units[0].bn, m.bn1);
  const sc = units.find((u) => u.name === 'layer4.0.shortcut.0')!;
  assert.equal(sc.bn, m.getModule('layer4.0.shortcut.1'));
  assert.equal(units.find((u) => u.name === 'layer3.1.conv2')!.bn, m.getModule('layer3.1.bn2'));
  const last = lastUnits(m, 3).map((u) => u.name);
  assert.deepEqual(last, ['layer4.0.shortcut.0', 'layer4.1.conv1', 'layer4.1.conv2']);
  assert.ok(lastUnits(m, 3).every((u) => u.index >= 17), 'selection never reaches earlier layers');
  assert.throws(() => lastUnits(m, 21), /layer count must be in 1\.\.20/);
});

test('the lowest-scoring channels are chosen per layer or over the network', () => {
  assert.deepEqual(lowestChannels([5, 1, 4, 1, 9, 0], 0.5), [1, 3, 5]);
  assert.deepEqual(lowestChannels([5, 1, 4], 0), []);
  assert.deepEqual(lowestChannelsNetworkWise([[5, 1], [0.5, 9, 8, 0.1]], 0.5), [[1], [0, 3]]);
});

test('the threshold rises linearly from start to the maximum and stays there', () => {
  const s = [0, 1, 2, 3, 4, 5].map((t) => thresholdAt(t, 5, 0.1, 0.5));
  assert.deepEqual(s.map((v) => +v.toFixed(6)), [0.1, 0.2, 0.3, 0.4, 0.5, 0.5]);
  for (let i = 1; i < s.length; i++) assert.ok(s[i] >= s[i - 1]);
});
