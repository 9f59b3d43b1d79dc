// The small CNN of the MNIST examples: conv32 -> conv64 -> maxpool -> fc128 -> fc10.
import { F, nn, pipe, Tensor } from '../torch';

export class SmallCNN extends nn.Module {
  readonly conv1: nn.Conv2d;
  readonly conv2: nn.Conv2d;
  readonly fc1: nn.Linear;
  readonly fc2: nn.Linear;
  constructor(inChannels = 1, numClasses = 10, imageSize = 28) {
    super();
    this.conv1 = this.registerModule('conv1', new nn.Conv2d(inChannels, 32, 3));
    this.conv2 = this.registerModule('conv2', new nn.Conv2d(32, 64, 3));
    const side = Math.floor((imageSize - 4) / 2);
    this.fc1 = this.registerModule('fc1', new nn.Linear(64 * side * side, 128));
    this.fc2 = this.registerModule('fc2', new nn.Linear(128, numClasses));
  }
  forward(x: Tensor): Tensor {
    return pipe(x,
      (t) => this.conv1.call(t), (t) => t.relu_(),
      (t) => this.conv2.call(t), (t) => t.relu_(),
      (t) => F.maxPool2d(t, 2), (t) => t.flatten(1),
      (t) => this.fc1.call(t), (t) => t.relu_(),
      (t) => this.fc2.call(t));
  }
}
