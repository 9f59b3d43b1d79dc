// PreAct-ResNet-18 as in BackdoorBench (after kuangliu/pytorch-cifar): pre-activation blocks with
// names bn1, conv1, bn2, conv2, shortcut.0 (1x1 conv), then adaptive average pooling and `linear`.
import { nn, pipe, Tensor } from '../torch';
import { inLayout, ResNetOptions } from './resnet';
import { addResidual } from './torchvision-ops';

export class PreActBlock extends nn.Module {
  readonly bn1: nn.BatchNorm2d;
  readonly conv1: nn.Conv2d;
  readonly bn2: nn.BatchNorm2d;
  readonly conv2: nn.Conv2d;
  readonly shortcut: nn.Sequential | null;
  constructor(inPlanes: number, planes: number, stride: number) {
    super();
    this.bn1 = this.registerModule('bn1', new nn.BatchNorm2d(inPlanes));
    this.conv1 = this.registerModule('conv1', new nn.Conv2d(inPlanes, planes, 3, { stride, padding: 1, bias: false }));
    this.bn2 = this.registerModule('bn2', new nn.BatchNorm2d(planes));
    this.conv2 = this.registerModule('conv2', new nn.Conv2d(planes, planes, 3, { padding: 1, bias: false }));
    this.shortcut = stride !== 1 || inPlanes !== planes
      ? this.registerModule('shortcut', new nn.Sequential(new nn.Conv2d(inPlanes, planes, 1, { stride, bias: false })))
      : null;
  }
  forward(x: Tensor): Tensor {
    return pipe(x, (t) => this.bn1.call(t), (t) => t.relu_(), (pre) => {
      const s = this.shortcut ? this.shortcut.call(pre) : x;
      return addResidual(pipe(pre, (t) => this.conv1.call(t), (t) => this.bn2.call(t), (t) => t.relu_(), (t) => this.conv2.call(t)), x, s);
    });
  }
}

export class PreActResNet18 extends nn.Module {
  readonly conv1: nn.Conv2d;
  readonly layers: nn.Sequential[];
  readonly linear: nn.Linear;
  constructor(readonly options: ResNetOptions = {}) {
    super();
    const w = options.width ?? 64;
    this.conv1 = this.registerModule('conv1', new nn.Conv2d(options.inChannels ?? 3, w, 3, { padding: 1, bias: false }));
    let inPlanes = w;
    this.layers = [1, 2, 4, 8].map((mult, i) => {
      const planes = w * mult;
      const stage = new nn.Sequential(new PreActBlock(inPlanes, planes, i === 0 ? 1 : 2), new PreActBlock(planes, planes, 1));
      inPlanes = planes;
      return this.registerModule(`layer${i + 1}`, stage);
    });
    this.linear = this.registerModule('linear', new nn.Linear(8 * w, options.numClasses ?? 10));
  }
  forward(x: Tensor): Tensor {
    return pipe(x, (t) => inLayout(t, this.options), (t) => this.conv1.call(t), ...this.layers.map((stage) => (t: Tensor) => stage.call(t)),
      (t) => t.mean([2, 3]), (t) => this.linear.call(t));
  }
}
