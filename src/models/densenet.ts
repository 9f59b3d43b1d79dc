// torchvision's DenseNet-BC (torchvision.models.densenet121/161/169/201) with its module names:
// features.conv0/norm0/relu0/pool0, features.denseblock<i>.denselayer<j> (norm1, relu1, conv1 1x1 to
// bn_size*k, norm2, relu2, conv2 3x3 to k, its input every earlier output concatenated),
// features.transition<i> (norm, relu, 1x1 conv halving the channels, 2x2 avg-pool), features.norm5,
// then relu, global average pool and classifier. Inputs of at least 32x32.
import { cat, dispose, nn, noGrad, pipe, Tensor } from '../torch';
import { assertMinSize } from './torchvision-ops';

/** growth rate k, layers per block, initial features */
export const DENSENETS = {
  densenet121: { growth: 32, blocks: [6, 12, 24, 16], init: 64 },
  densenet161: { growth: 48, blocks: [6, 12, 36, 24], init: 96 },
  densenet169: { growth: 32, blocks: [6, 12, 32, 32], init: 64 },
  densenet201: { growth: 32, blocks: [6, 12, 48, 32], init: 64 },
} as const;
export type DenseNetName = keyof typeof DENSENETS;

const BN_SIZE = 4;

class DenseLayer extends nn.NamedSequential {
  constructor(inC: number, growth: number) {
    super([
      ['norm1', new nn.BatchNorm2d(inC)], ['relu1', new nn.ReLU()], ['conv1', new nn.Conv2d(inC, BN_SIZE * growth, 1, { bias: false })],
      ['norm2', new nn.BatchNorm2d(BN_SIZE * growth)], ['relu2', new nn.ReLU()], ['conv2', new nn.Conv2d(BN_SIZE * growth, growth, 3, { padding: 1, bias: false })],
    ]);
  }
}

/** Each layer sees the block's input and every earlier layer's output, concatenated on channels. */
class DenseBlock extends nn.Module {
  readonly layers: DenseLayer[];
  constructor(n: number, inC: number, growth: number) {
    super();
    this.layers = Array.from({ length: n }, (_, i) => this.registerModule(`denselayer${i + 1}`, new DenseLayer(inC + i * growth, growth)));
  }
  forward(x: Tensor): Tensor {
    const features = [x];
    for (const layer of this.layers) {
      const input = cat(features, 1);
      features.push(layer.call(input));
      input.dispose();
    }
    const out = cat(features, 1);
    dispose(features.slice(1));
    return out;
  }
}

const transition = (inC: number, outC: number) => new nn.NamedSequential([
  ['norm', new nn.BatchNorm2d(inC)], ['relu', new nn.ReLU()], ['conv', new nn.Conv2d(inC, outC, 1, { bias: false })], ['pool', new nn.AvgPool2d(2, 2)],
]);

export interface DenseNetOptions { inChannels?: number; numClasses?: number; imageSize?: number }

export class DenseNet extends nn.Module {
  readonly features: nn.NamedSequential;
  readonly classifier: nn.Linear;
  constructor(readonly arch: DenseNetName, o: DenseNetOptions = {}) {
    super();
    assertMinSize(arch, o.imageSize ?? 224, 32, 'a stride-2 stem, a max-pool and three 2x2 average pools');
    const { growth, blocks, init } = DENSENETS[arch];
    const stages: [string, nn.Module][] = [
      ['conv0', new nn.Conv2d(o.inChannels ?? 3, init, 7, { stride: 2, padding: 3, bias: false })],
      ['norm0', new nn.BatchNorm2d(init)], ['relu0', new nn.ReLU()], ['pool0', new nn.MaxPool2d(3, 2, 1)],
    ];
    let c: number = init;
    blocks.forEach((n, i) => {
      stages.push([`denseblock${i + 1}`, new DenseBlock(n, c, growth)]);
      c += n * growth;
      if (i < blocks.length - 1) { stages.push([`transition${i + 1}`, transition(c, Math.floor(c / 2))]); c = Math.floor(c / 2); }
    });
    stages.push(['norm5', new nn.BatchNorm2d(c)]);
    this.features = this.registerModule('features', new nn.NamedSequential(stages));
    this.classifier = this.registerModule('classifier', new nn.Linear(c, o.numClasses ?? 1000));
    // torchvision's init: kaiming_normal_ (fan-in) convolutions, zero linear bias
    noGrad(() => {
      for (const [, m] of this.namedModules()) if (m instanceof nn.Conv2d) m.weight.normal_(0, Math.sqrt(2 / (m.weight.numel / m.outChannels)));
      this.classifier.bias?.zero_();
    });
  }
  forward(x: Tensor): Tensor {
    return pipe(x, (t) => this.features.call(t), (t) => t.relu(), (t) => t.mean([2, 3]), (t) => this.classifier.call(t));
  }
}
