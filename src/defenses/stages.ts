// A model's stages, found from the graph rather than from names: the feature maps a network passes
// through shrink stage by stage (ResNet's layer1..4, VGG's blocks between max-pools, MobileNet's
// strided blocks), so a stage's output is the outermost module, the last in execution order, that
// outputs a map of that resolution. For a ResNet-18 (plain or pre-activation) the last three are
// layer2, layer3 and layer4: NAD's published layers.
import { nn, noGrad, scope, Tensor } from '../torch/compute';
import { normalize } from '../train/loop';
import { DefenseData } from './common';

/** Pooling modules resample without computing features: never a stage's output. */
const POOLS = [nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d];

export interface Stage { name: string; module: nn.Module; height: number; width: number; channels: number }

/**
 * The stages of `model` on the defender's images, shallowest first: for each resolution of 4-D
 * outputs before the first output that is not 4-D (the head), the outermost module (not a pooling
 * layer, not the model itself) that produced it, the last of those. One eval-mode forward pass of two images, no gradients.
 */
export function stages(model: nn.Module, data: DefenseData): Stage[] {
  const seen: Stage[] = [];
  let headReached = false;
  // maps come out of convolutions, batch norms and blocks; a leaf such as a Linear or a LayerNorm may
  // work on a channels-last permutation (ConvNeXt's blocks), whose 4-D shape is not a map's
  const counted = (m: nn.Module): boolean => m instanceof nn.Conv2d || m instanceof nn.BatchNorm2d || m.namedChildren().length > 0;
  const modules = model.namedModules().filter(([name, m]) => name !== '' && !POOLS.some((P) => m instanceof P));
  const hooks = modules.map(([name, m]) => m.registerForwardHook((_m, _in, out: Tensor) => {
    if (headReached) return;
    if (out.ndim !== 4) { headReached = true; return; }
    if (!counted(_m)) return;
    const [, channels, height, width] = out.shape;
    seen.push({ name, module: m, height, width, channels });
  }));
  const wasTraining = model.training;
  model.eval();
  try {
    noGrad(() => scope(() => { model.call(normalize(data.train.images.narrow(0, 0, Math.min(2, data.train.labels.numel)), data.norm)); }));
  } finally {
    for (const h of hooks) h.remove();
    model.train(wasTraining);
  }
  // of each resolution, in the order the resolutions came: the outermost module (fewest dots in its
  // name: a ResNet's 'layer2' over its blocks, and over a pre-activation 'layer3.0.bn1' that reads
  // layer2's output at the same size), the last of those
  const depth = (name: string): number => name.split('.').length;
  const byResolution = new Map<string, Stage>();
  for (const s of seen) {
    const key = `${s.height}x${s.width}`, best = byResolution.get(key);
    if (best && depth(best.name) < depth(s.name)) continue;
    byResolution.delete(key);
    byResolution.set(key, s);
  }
  // a resolution met in passing (a squeeze-excitation's 1x1 inside a block) is no stage: stages shrink
  const all = [...byResolution.values()];
  return all.filter((x, i) => all.slice(i + 1).every((y) => y.height * y.width < x.height * x.width));
}
