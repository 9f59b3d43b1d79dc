// torchvision's VGG with batch norm (torchvision.models.vgg11_bn / vgg13_bn / vgg16_bn / vgg19_bn), with its
// module names: features.<i> (conv, bn, relu per number in the config, a 2x2 max-pool per 'M'), avgpool to
// 7x7, classifier.0/.3/.6 (4096, 4096, classes). Five max-pools: inputs of at least 32x32.
import { nn, pipe, Tensor } from '../torch';
import { assertMinSize, initTorchvisionCnn } from './torchvision-ops';

export const VGG_CONFIGS = {
  vgg11_bn: [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
  vgg13_bn: [64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
  vgg16_bn: [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'],
  vgg19_bn: [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M', 512, 512, 512, 512, 'M'],
} as const;
export type VggName = keyof typeof VGG_CONFIGS;

export interface VggOptions { inChannels?: number; numClasses?: number; imageSize?: number; dropout?: number }

export class VGG extends nn.Module {
  readonly features: nn.Sequential;
  readonly avgpool: nn.AdaptiveAvgPool2d;
  readonly classifier: nn.Sequential;
  constructor(readonly config: VggName, o: VggOptions = {}) {
    super();
    assertMinSize(config, o.imageSize ?? 224, 32, 'five 2x2 max-pools');
    let c = o.inChannels ?? 3;
    const layers: nn.Module[] = [];
    for (const v of VGG_CONFIGS[config]) {
      if (v === 'M') layers.push(new nn.MaxPool2d(2, 2));
      else { layers.push(new nn.Conv2d(c, v, 3, { padding: 1 }), new nn.BatchNorm2d(v), new nn.ReLU()); c = v; }
    }
    this.features = this.registerModule('features', new nn.Sequential(...layers));
    const p = o.dropout ?? 0.5;
    this.avgpool = this.registerModule('avgpool', new nn.AdaptiveAvgPool2d(7));
    this.classifier = this.registerModule('classifier', new nn.Sequential(
      new nn.Linear(512 * 7 * 7, 4096), new nn.ReLU(), new nn.Dropout(p),
      new nn.Linear(4096, 4096), new nn.ReLU(), new nn.Dropout(p),
      new nn.Linear(4096, o.numClasses ?? 1000)));
    initTorchvisionCnn(this);
  }
  forward(x: Tensor): Tensor {
    return pipe(x, (t) => this.features.call(t), (t) => this.avgpool.call(t), (t) => t.flatten(1), (t) => this.classifier.call(t));
  }
}
