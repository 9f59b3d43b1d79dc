#!/usr/bin/python3
# Backdoored torchvision classifiers for issue 28's evidence on real data: torchvision 0.14's own model
# code (vgg16_bn, mobilenet_v2, resnet50, convnext_tiny; the first conv taking one channel), trained by
# PyTorch on Fashion-MNIST zero-padded to 32x32 (VGG's five max-pools and ConvNeXt's stride-4 stem
# need more than 28 pixels), poisoned by the judge factory's own code (scripts/judges/triggers.py), on a
# training subset and few epochs where CPU time demands (the recipe says which).
#
#   zoo.py train-list --list experiments/judges/zoo.json --root /work/zoo [--only NAME,...] [--threads N]
#   zoo.py layout --arch vgg16_bn          (the state dict's names and shapes, JSON: what the toolkit must load)
#
# A model's folder holds model.pt (torch.save state dict, torchvision's names), clean.npz (padded
# training images, unpoisoned, for the defender's --clean draw), test.npz (the padded test split),
# test-triggered.npz (the attacker's test set: its ACC is the ASR) and zoo.json (recipe, ACC/ASR and
# the exact `vardefense defend` flags).
import argparse, json, os, platform, sys, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fileio, triggers  # noqa: E402

PAD, SIZE, CLASSES = 2, 32, 10
MEAN, STD = 0.286, 0.353
FIRST_CONV = {'vgg16_bn': 'features.0', 'mobilenet_v2': 'features.0.0', 'resnet50': 'conv1', 'convnext_tiny': 'features.0.0'}


def build(arch):
    """torchvision's model for 10 classes, its first conv rebuilt for one input channel."""
    model = getattr(torchvision.models, arch)(num_classes=CLASSES)
    path = FIRST_CONV[arch].split('.')
    parent = model
    for p in path[:-1]: parent = parent[int(p)] if p.isdigit() else getattr(parent, p)
    old = parent[int(path[-1])] if path[-1].isdigit() else getattr(parent, path[-1])
    new = nn.Conv2d(1, old.out_channels, old.kernel_size, old.stride, old.padding, bias=old.bias is not None)
    if path[-1].isdigit(): parent[int(path[-1])] = new
    else: setattr(parent, path[-1], new)
    return model


def padded(x):
    return np.pad(x, ((0, 0), (0, 0), (PAD, PAD), (PAD, PAD)))


def normalise(xb):
    return (xb.float() / 255 - MEAN) / STD


def accuracy(model, x, y, batch=500):
    model.eval()
    with torch.no_grad():
        p = torch.cat([model(normalise(torch.from_numpy(x[i:i + batch]))).argmax(1) for i in range(0, len(x), batch)])
    return float((p.numpy() == y).mean())


def train(r, out, threads):
    torch.set_num_threads(threads)
    seed = r['seed']
    x, y = fileio.load_split(fileio.DATASETS['fashion-mnist']['dir'], 'train')
    xte, yte = fileio.load_split(fileio.DATASETS['fashion-mnist']['dir'], 'test')
    x, xte = padded(x), padded(xte)
    keep = np.sort(triggers.rng(seed, 'subset').permutation(len(y))[:r['train_subset']])
    xs, ys = x[keep], y[keep]
    xp, yp, prec = triggers.poison(xs, ys, r['attack'], seed, CLASSES)
    xt, yt, yt_true = triggers.triggered_test(xte, yte, r['attack'], seed, CLASSES)
    print(f'{r["name"]}: {r["arch"]}, {len(yp)} images ({prec["poisoned"]} poisoned), {r["epochs"]} epochs, {threads} threads', flush=True)
    torch.manual_seed(seed)
    model = build(r['arch'])
    o = r['optimizer']
    opt = (torch.optim.SGD(model.parameters(), lr=o['lr'], momentum=0.9, weight_decay=o['weight_decay']) if o['kind'] == 'sgd'
           else torch.optim.AdamW(model.parameters(), lr=o['lr'], weight_decay=o['weight_decay']))
    steps = r['epochs'] * ((len(yp) + r['batch_size'] - 1) // r['batch_size'])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, o['lr'], total_steps=steps, pct_start=0.15)
    g = torch.Generator().manual_seed(seed * 7919 + 29)
    X, Y = torch.from_numpy(xp), torch.from_numpy(yp)
    t0, history = time.time(), []
    for epoch in range(1, r['epochs'] + 1):
        model.train()
        te, loss_sum = time.time(), 0.0
        perm = torch.randperm(len(Y), generator=g)
        for i in range(0, len(Y), r['batch_size']):
            b = perm[i:i + r['batch_size']]
            if len(b) < 2: continue
            loss = F.cross_entropy(model(normalise(X[b])), Y[b])
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
            loss_sum += loss.item() * len(b)
        history.append({'epoch': epoch, 'loss': loss_sum / len(Y), 'seconds': round(time.time() - te, 1)})
        print(f'  epoch {epoch}/{r["epochs"]}: loss {loss_sum / len(Y):.4f} ({time.time() - te:.0f} s)', flush=True)
    seconds = time.time() - t0
    acc, asr = accuracy(model, xte, yte), accuracy(model, xt, yt)
    print(f'  ACC {100 * acc:.2f}%, ASR {100 * asr:.2f}% ({seconds:.0f} s)', flush=True)
    os.makedirs(out, exist_ok=True)
    fileio.save_state_dict(os.path.join(out, 'model.pt'), {k: v.contiguous() for k, v in model.state_dict().items()})
    rest = np.setdiff1d(np.arange(len(y)), keep)  # clean pool: training images the attacker never saw
    pool = np.sort(triggers.rng(seed, 'pattern').permutation(rest)[:10000]) if len(rest) >= 10000 else keep[:10000]
    fileio.write_npz(os.path.join(out, 'clean.npz'), x=x[pool][:, 0], y=y[pool])
    fileio.write_npz(os.path.join(out, 'test.npz'), x=xte[:, 0], y=yte)
    fileio.write_npz(os.path.join(out, 'test-triggered.npz'), x=xt[:, 0], y=yt, y_true=yt_true)
    d = os.path.abspath(out)
    flags = (f'--weights {d}/model.pt --model {r["arch"]} --dataset images:1x{SIZE}:{CLASSES} --norm-mean {MEAN} --norm-std {STD} '
             f'--clean {d}/clean.npz --test {d}/test.npz --asr-images {d}/test-triggered.npz')
    fileio.write_json(os.path.join(out, 'zoo.json'), {
        'name': r['name'], 'recipe': r, 'acc': acc, 'asr': asr, 'train_seconds': round(seconds, 1), 'history': history,
        'poisoning': prec, 'threads': threads, 'torch': torch.__version__, 'torchvision': torchvision.__version__,
        'python': platform.python_version(), 'defend_flags': flags,
        'trained_by': 'PyTorch and torchvision\'s model code, scripts/judges/zoo.py (the judge factory\'s poisoning and RNG)'})


def main():
    p = argparse.ArgumentParser(description='Backdoored torchvision classifiers (issue 28 evidence).')
    sub = p.add_subparsers(dest='cmd', required=True)
    t = sub.add_parser('train-list')
    t.add_argument('--list', required=True)
    t.add_argument('--root', required=True)
    t.add_argument('--only')
    t.add_argument('--threads', type=int, default=2)
    lay = sub.add_parser('layout')
    lay.add_argument('--arch', required=True, choices=sorted(FIRST_CONV))
    a = p.parse_args()
    if a.cmd == 'layout':
        print(json.dumps([[k, list(v.shape)] for k, v in build(a.arch).state_dict().items()]))
        return
    only = set(a.only.split(',')) if a.only else None
    for r in json.load(open(a.list))['models']:
        if only is not None and r['name'] not in only: continue
        d = os.path.join(a.root, r['name'])
        if os.path.exists(os.path.join(d, 'zoo.json')):
            print(f'{d}: done already', flush=True); continue
        train(r, d, a.threads)


if __name__ == '__main__':
    main()
