// A forward hook on any module of a torchvision model may keep what it makes until the forward is over
// (NAD keeps each hooked layer's attention map for the loss): the blocks free their intermediates
// without a scope() around their children, which would free those tensors too.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as T from '../../src/torch';
import { createModel, ModelName } from '../../src/models';

test('tensors made by forward hooks on every module outlive the blocks around them, in train and eval mode', () => {
  for (const [name, size] of [['mobilenet_v3_small', 32], ['convnext_tiny', 32], ['densenet121', 32], ['efficientnet_b0', 32], ['vit_b_32', 32]] as [ModelName, number][]) {
    T.manualSeed(0);
    const model = createModel({ name, inChannels: 3, numClasses: 4, imageSize: size });
    const kept: [string, T.Tensor][] = [];
    const handles = model.namedModules().filter(([n]) => n !== '').map(([n, m]) => m.registerForwardHook((_m, _x, y) => { kept.push([n, y.sum()]); }));
    for (const train of [true, false]) {
      model.train(train);
      T.scope(() => {
        const out = model.call(T.randn([2, 3, size, size]));
        assert.deepEqual(out.shape, [2, 4]);
        const dead = kept.filter(([, t]) => t.disposed).map(([n]) => n);
        assert.deepEqual(dead, [], `${name}: tensors made by hooks were freed inside the forward: ${dead.slice(0, 5).join(', ')}`);
        assert.ok(kept.length > 50, `${name}: the hooks ran (${kept.length})`);
      });
      kept.length = 0;
    }
    handles.forEach((h) => h.remove());
    model.dispose();
  }
});
