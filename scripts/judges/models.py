# The judge factory's architectures, written here (not imported from the toolkit or its tests), with the
# parameter names the toolkit's loaders expect, so `vardefense ... --weights model.pt --model NAME
# --width W` loads a judge as it is:
#   resnet18                   kuangliu/pytorch-cifar ResNet-18: conv1, bn1, layerI.J.{conv1,bn1,conv2,bn2,
#                              shortcut.0,shortcut.1}, linear (src/models/resnet.ts)
#   preact-resnet18            kuangliu/BackdoorBench PreAct-ResNet-18: conv1, layerI.J.{bn1,conv1,bn2,conv2,
#                              shortcut.0}, linear; no BN after the last stage (src/models/preact-resnet.ts)
#   torchvision-resnet18-cifar torchvision.models.resnet18's modules (conv1, bn1, layerI.J.downsample.0/.1, fc)
#                              with a 3x3 stride-1 conv1 and no max-pool; width 64 is torchvision's own
#                              resnet18 (see `self-check`), other widths the same structure scaled
import torch, torch.nn as nn, torch.nn.functional as F

ARCHS = ('resnet18', 'preact-resnet18', 'torchvision-resnet18-cifar')


class KBlock(nn.Module):
    def __init__(self, inp, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or inp != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(inp, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class KResNet18(nn.Module):
    def __init__(self, in_ch, classes, w):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        inp = w
        for i, m in enumerate((1, 2, 4, 8)):
            setattr(self, f'layer{i + 1}', nn.Sequential(KBlock(inp, w * m, 1 if i == 0 else 2), KBlock(w * m, w * m, 1)))
            inp = w * m
        self.linear = nn.Linear(8 * w, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class PreActBlock(nn.Module):
    def __init__(self, inp, planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inp)
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        if stride != 1 or inp != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(inp, planes, 1, stride, bias=False))

    def forward(self, x):
        pre = F.relu(self.bn1(x))
        s = self.shortcut(pre) if hasattr(self, 'shortcut') else x
        return self.conv2(F.relu(self.bn2(self.conv1(pre)))) + s


class PreActResNet18(nn.Module):
    def __init__(self, in_ch, classes, w):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, w, 3, 1, 1, bias=False)
        inp = w
        for i, m in enumerate((1, 2, 4, 8)):
            setattr(self, f'layer{i + 1}', nn.Sequential(PreActBlock(inp, w * m, 1 if i == 0 else 2), PreActBlock(w * m, w * m, 1)))
            inp = w * m
        self.linear = nn.Linear(8 * w, classes)

    def forward(self, x):
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        return self.linear(out.mean((2, 3)))


class TvBlock(nn.Module):
    def __init__(self, inp, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inp != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inp, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class TvResNet18Cifar(nn.Module):
    def __init__(self, in_ch, classes, w):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        inp = w
        for i, m in enumerate((1, 2, 4, 8)):
            setattr(self, f'layer{i + 1}', nn.Sequential(TvBlock(inp, w * m, 1 if i == 0 else 2), TvBlock(w * m, w * m, 1)))
            inp = w * m
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * w, classes)
        for mod in self.modules():  # torchvision's initialisation
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode='fan_out', nonlinearity='relu')

    def forward(self, x):
        out = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(torch.flatten(self.avgpool(out), 1))


def build(arch, width, in_ch=1, classes=10):
    if arch == 'resnet18': return KResNet18(in_ch, classes, width)
    if arch == 'preact-resnet18': return PreActResNet18(in_ch, classes, width)
    if arch == 'torchvision-resnet18-cifar': return TvResNet18Cifar(in_ch, classes, width)
    raise ValueError(f'unknown architecture {arch!r} (known: {", ".join(ARCHS)})')


def torchvision_reference(in_ch=1, classes=10):
    """torchvision.models.resnet18 with the small-image stem: the parameter layout width 64 must match."""
    import torchvision
    m = torchvision.models.resnet18(num_classes=classes)
    m.conv1 = nn.Conv2d(in_ch, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m
