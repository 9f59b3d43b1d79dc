# torchvision side of the torchvision-ResNet parity test (Debian's python3-torchvision 0.14 on
# python3-torch 1.13). Usage: python3 torchvision_ref.py <dir>: writes <variant>.pt (torch.save of the
# state dict) and ref.safetensors (inputs and logits) for the variants below.
import copy, os, sys
import torch, torch.nn as nn, torchvision
from torch_ref import save_st

def variant(stem, in_ch):
    m = torchvision.models.resnet18(num_classes=10)
    if stem == 'cifar':  # the usual CIFAR adaptation
        m.conv1 = nn.Conv2d(in_ch, 64, kernel_size=3, stride=1, padding=1, bias=False)
        m.maxpool = nn.Identity()
    elif in_ch != 3:  # in_chans adapted as torchvision users do
        m.conv1 = nn.Conv2d(in_ch, 64, kernel_size=7, stride=2, padding=3, bias=False)
    with torch.no_grad():  # non-trivial batch-norm statistics, so eval mode is tested for real
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.2, 0.2)
                mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 2.0)
    return m

def main(d):
    # the toolkit's thread count (as torchvision_zoo_ref.py): reductions split across threads round
    # differently, and batch statistics of 2 images amplify that in channels-last
    torch.manual_seed(0); torch.set_num_threads(int(os.environ.get('ZOO_THREADS', '1')))
    out = {}
    for name, stem, in_ch, size in [('imagenet3', 'imagenet', 3, 32), ('cifar3', 'cifar', 3, 32), ('imagenet1', 'imagenet', 1, 28), ('cifar1', 'cifar', 1, 28)]:
        m = variant(stem, in_ch)
        torch.save(m.state_dict(), f'{d}/{name}.pt')
        x = torch.randn(2, in_ch, size, size)
        m.eval()
        with torch.no_grad():
            out[f'{name}.logits_eval'] = m(x)
        cl = copy.deepcopy(m).to(memory_format=torch.channels_last)
        m.train(); cl.train()
        with torch.no_grad():
            out[f'{name}.logits_train'] = m(x)
            # channels-last, as torch users turn a model (batch statistics of 2 images amplify the rounding
            # of another kernel, so train mode is compared layout to layout)
            out[f'{name}.logits_train_cl'] = cl(x.contiguous(memory_format=torch.channels_last))
        out[f'{name}.x'] = x
        out[f'{name}.running_mean_after_train'] = m.bn1.running_mean.clone()
    save_st(f'{d}/ref.safetensors', out)

if __name__ == '__main__':
    main(sys.argv[1])
