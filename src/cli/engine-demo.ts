// `vardefense engine-demo`: train a small CNN on the real Fashion-MNIST and print accuracy and img/s.
import { getNumThreads, manualSeed, optim } from '../torch';
import { DATASETS, loadImageSet } from '../data/datasets';
import { SmallCNN } from '../models/small-cnn';
import { normalize, predict, trainEpoch } from '../train/loop';
import { accuracyOf } from '../train/accuracy';
import { progress } from '../pipeline/progress';

export interface EngineDemoOptions { dataDir?: string; epochs: number; batchSize: number; seed: number; json: boolean }

export function runEngineDemo(o: EngineDemoOptions): void {
  manualSeed(o.seed);
  const norm = DATASETS['fashion-mnist'];
  const train = loadImageSet('fashion-mnist', 'train', o.dataDir);
  const test = loadImageSet('fashion-mnist', 'test', o.dataDir);
  const model = new SmallCNN(1, 10, 28);
  const opt = new optim.SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  const results = [];
  for (let e = 1; e <= o.epochs; e++) {
    const bar = progress(`epoch ${e}/${o.epochs}`, train.images.size(0));
    const stats = trainEpoch(model, opt, train.images, train.labels, {
      batchSize: o.batchSize, norm, onBatch: (b) => bar.tick(b.images, { loss: b.loss.toFixed(3) }),
    });
    bar.stop();
    const acc = accuracyOf(predict(model, test.images, { batchSize: 1000, prepare: (x) => normalize(x, norm) }), test.labels.toList());
    results.push({ epoch: e, trainLoss: stats.loss, trainAccuracy: stats.accuracy, testAccuracy: acc, trainImagesPerSecond: stats.imagesPerSecond, seconds: stats.seconds });
  }
  if (o.json) {
    console.log(JSON.stringify({ dataset: 'fashion-mnist', model: 'small-cnn', threads: getNumThreads(), epochs: results }));
    return;
  }
  console.log(`Fashion-MNIST, small CNN, batch ${o.batchSize}, ${getNumThreads()} threads`);
  console.log('epoch  train loss  train acc  test acc  train img/s');
  for (const r of results)
    console.log(`${String(r.epoch).padStart(5)}  ${r.trainLoss.toFixed(4).padStart(10)}  ${(100 * r.trainAccuracy).toFixed(2).padStart(8)}%  ${(100 * r.testAccuracy).toFixed(2).padStart(7)}%  ${r.trainImagesPerSecond.toFixed(0).padStart(11)}`);
}
