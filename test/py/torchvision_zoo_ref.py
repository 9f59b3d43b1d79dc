# torchvision side of the model-zoo parity tests (Debian's python3-torchvision 0.14 on python3-torch 1.13).
# Usage: python3 torchvision_zoo_ref.py <dir> <name>:<in_ch>:<size>:<batch>[:f64] ... (batch 0: only <tag>.keys,
# the state dict's names and shapes, the module names, and the norms' eps and momentum, in order, as JSON in uint8)
# For each spec writes <dir>/<name>_<in_ch>.pt (torch.save of the state dict) and, in <dir>/ref.safetensors,
# under the prefix <name>_<in_ch>.: x, y, logits_eval, logits_train, loss, and grad.<param> for a few
# parameters (list in params, as a uint8 string) after one backward of the cross entropy in train mode,
# and with f64, grad64.<param> / gradcl.<param> (ResNets): the same in float64 / in float32 with channels-last
# activations.
# Dropout and stochastic depth are set to p = 0 so train mode is deterministic; batch-norm statistics,
# norm affines, layer scales and heads are randomised so eval mode and every block are tested for real.
import copy, json, os, sys
import torch, torch.nn as nn, torchvision
from torchvision.ops import StochasticDepth
from torch_ref import save_st


def first_conv_for(m, in_ch):
    """Replaces the first Conv2d with one of in_ch input channels, as users adapt torchvision models."""
    if in_ch == 3:
        return
    for name, mod in m.named_modules():
        if isinstance(mod, nn.Conv2d):
            parent = m.get_submodule(name.rsplit('.', 1)[0]) if '.' in name else m
            new = nn.Conv2d(in_ch, mod.out_channels, mod.kernel_size, mod.stride, mod.padding, mod.dilation, mod.groups, mod.bias is not None)
            setattr(parent, name.rsplit('.', 1)[-1], new)
            return


def make(name, in_ch, size, classes=10):
    """torchvision.models.<name>(num_classes=classes), or BackdoorBench's ViT: Sequential(Resize((224, 224)), vit)."""
    if name.startswith('backdoorbench-'):
        from torchvision.transforms import Resize
        vit = getattr(torchvision.models, name[len('backdoorbench-'):])(num_classes=classes)
        first_conv_for(vit, in_ch)
        return nn.Sequential(Resize((224, 224)), vit)
    kw = {'image_size': size} if name.startswith('vit') else {}
    m = getattr(torchvision.models, name)(num_classes=classes, **kw)
    first_conv_for(m, in_ch)
    return m


def structure(name, in_ch, size):
    """The model without its initialisation (which dominates the time of the large ones)."""
    inits = ['kaiming_normal_', 'kaiming_uniform_', 'normal_', 'uniform_', 'constant_', 'trunc_normal_', 'xavier_uniform_', 'ones_', 'zeros_']
    saved = {f: getattr(nn.init, f) for f in inits}
    for f in inits:
        setattr(nn.init, f, lambda t, *a, **k: t)
    try:
        return make(name, in_ch, size)
    finally:
        for f, fn in saved.items():
            setattr(nn.init, f, fn)


def build(name, in_ch, size, classes=10):
    m = make(name, in_ch, size, classes)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.2, 0.2)
            elif isinstance(mod, nn.LayerNorm):
                mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.2, 0.2)
            elif isinstance(mod, nn.Dropout):
                mod.p = 0.0
            elif isinstance(mod, StochasticDepth):
                mod.p = 0.0
            if hasattr(mod, 'layer_scale'):  # ConvNeXt's 1e-6 would hide the blocks
                mod.layer_scale.uniform_(0.2, 0.6)
        vit = m[1] if name.startswith('backdoorbench-') else m
        if 'vit' in name:
            nn.init.normal_(vit.heads.head.weight, std=0.05); nn.init.normal_(vit.class_token, std=0.5)
    # running statistics of the activations of random images (then perturbed), so that eval mode keeps the
    # activations in range (made-up statistics saturate MobileNet's ReLU6 into constant logits)
    bns = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]
    if bns:
        momenta = [mod.momentum for mod in bns]
        for mod in bns:
            mod.reset_running_stats(); mod.momentum = None
        m.train()
        with torch.no_grad():
            for _ in range(2):
                m(torch.randn(4, in_ch, size, size))
            for mod, mom in zip(bns, momenta):
                mod.momentum = mom
                mod.running_mean.add_(torch.empty_like(mod.running_mean).uniform_(-0.1, 0.1))
                mod.running_var.mul_(torch.empty_like(mod.running_var).uniform_(0.8, 1.25))
    return m


def main(d, specs):
    # the toolkit's thread count: reductions split across threads round differently, and deep
    # batch-normed networks amplify that (DenseNet-121, batch 2: 1 vs 2 threads, 10% on one gradient)
    torch.set_num_threads(int(os.environ.get('ZOO_THREADS', '1')))
    out = {}
    for spec in specs:
        name, in_ch, size, batch, *flags = spec.split(':')
        in_ch, size, batch, f64 = int(in_ch), int(size), int(batch), 'f64' in flags
        tag = f'{name}_{in_ch}'
        torch.manual_seed(0)
        if batch == 0:  # structure only: the state dict's names and shapes, in order
            m = structure(name, in_ch, size)
            keys = json.dumps({'state': [[k, list(v.shape)] for k, v in m.state_dict().items()], 'modules': [n for n, _ in m.named_modules()],
                               'norms': [[n, mod.eps, mod.momentum if isinstance(mod, nn.BatchNorm2d) else None] for n, mod in m.named_modules() if isinstance(mod, (nn.BatchNorm2d, nn.LayerNorm))]})
            out[f'{tag}.keys'] = torch.tensor(list(keys.encode()), dtype=torch.uint8)
            continue
        m = build(name, in_ch, size)
        torch.save(m.state_dict(), f'{d}/{tag}.pt')
        x = torch.randn(batch, in_ch, size, size)
        y = torch.arange(batch) % 10
        m.eval()
        with torch.no_grad():
            out[f'{tag}.logits_eval'] = m(x)
        m64 = copy.deepcopy(m).double() if f64 else None
        layouts = f64 and name.startswith(('resnet', 'wide_resnet'))  # the toolkit runs these channels-last
        mcl = copy.deepcopy(m).to(memory_format=torch.channels_last) if layouts else None
        m.train()
        logits = m(x)
        loss = nn.functional.cross_entropy(logits, y)
        loss.backward()
        named = [(n, p) for n, p in m.named_parameters()]
        picks = sorted({0, len(named) // 3, (2 * len(named)) // 3, len(named) - 2})
        for i in picks:
            n, p = named[i]
            out[f'{tag}.grad.{n}'] = p.grad
        # float64 (flag f64): deep batch-normed networks in train mode amplify rounding in the backward
        # (ResNet-50 at batch 2: PyTorch's own float32 gradients differ from float64 by ~2%), so there the
        # toolkit's float32 gradients are held to PyTorch's own float32 error against a float64 reference
        if f64:
            m64.train()
            nn.functional.cross_entropy(m64(x.double()), y).backward()
            p64 = dict(m64.named_parameters())
            for i in picks:
                out[f'{tag}.grad64.{named[i][0]}'] = p64[named[i][0]].grad
            del m64
        # channels-last float32 (the toolkit's ResNets' layout): other kernels, other rounding
        if layouts:
            mcl.train()
            nn.functional.cross_entropy(mcl(x.contiguous(memory_format=torch.channels_last)), y).backward()
            pcl = dict(mcl.named_parameters())
            for i in picks:
                out[f'{tag}.gradcl.{named[i][0]}'] = pcl[named[i][0]].grad.contiguous()
            del mcl
        out[f'{tag}.params'] = torch.tensor(list(','.join(named[i][0] for i in picks).encode()), dtype=torch.uint8)
        out[f'{tag}.x'] = x
        out[f'{tag}.y'] = y
        out[f'{tag}.logits_train'] = logits.detach()
        out[f'{tag}.loss'] = loss.detach().reshape(1)
        del m
    save_st(f'{d}/ref.safetensors', out)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2:])
