#!/usr/bin/python3
# Trains a backdoored ResNet-18 with PyTorch itself, not with this project's engine: the held-out judges
# of docs/protocol.md section 6. A research tool run with Debian's python3 (python3-torch); the toolkit
# never needs it. The model keeps the project's parameter names (test/py/torch_ref.py's ResNet18), so
# `vardefense defend|eval --weights OUT.pt --model resnet18 --width W` loads it; the triggers, the
# poisoned-index choice and the normalisation mirror src/attacks and src/data, so that `vardefense eval`
# with the flags recorded in OUT.json measures the same ACC and ASR as this script.
import argparse, json, math, os, sys, tempfile, time
import torch, torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'py'))
from torch_ref import ResNet18, read_idx  # noqa: E402

# src/data/datasets.ts
DATASETS = {
    'fashion-mnist': {'mean': 0.286, 'std': 0.353, 'dir': '/usr/share/datasets/fashion-mnist'},
    'mnist': {'mean': 0.1307, 'std': 0.3081, 'dir': None},
}
M32 = 0xFFFFFFFF


class Rng:
    """src/util/rng.ts (mulberry32), bit for bit: the poisoned indices, positions and noise of the toolkit."""
    def __init__(self, seed):
        self.s = (seed & M32) ^ 0x9E3779B9

    def next(self):
        self.s = (self.s + 0x6D2B79F5) & M32
        t = self.s
        t = ((t ^ (t >> 15)) * (t | 1)) & M32
        t = (t ^ ((t + (((t ^ (t >> 7)) * (t | 61)) & M32)) & M32)) & M32
        return ((t ^ (t >> 14)) & M32) / 4294967296

    def int(self, n):
        return math.floor(self.next() * n)

    def permutation(self, n):
        p = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.int(i + 1)
            p[i], p[j] = p[j], p[i]
        return p


def apply_trigger(images, a, rng):
    """A triggered copy of uint8 images [N, 1, H, W], as src/attacks/triggers.ts applyTrigger."""
    n, c, h, w = images.shape
    if a.attack == 'blend':
        pattern = Rng(a.attack_seed)
        noise = torch.tensor([pattern.int(256) for _ in range(c * h * w)], dtype=torch.uint8).reshape(1, c, h, w)
        return images.float().mul(1 - a.alpha).add(noise.float().mul(a.alpha)).round().clamp(0, 255).to(torch.uint8)
    k, out = a.trigger_size, images.clone()
    if a.position == 'fixed':
        dx, dy = a.offset
        out[:, :, h - k - dy:h - dy, w - k - dx:w - dx] = 255
    else:
        for i in range(n):
            y = rng.int(h - k + 1); x = rng.int(w - k + 1)
            out[i, :, y:y + k, x:x + k] = 255
    return out


def poison(images, labels, a):
    """src/attacks/poison.ts poisonTrainingSet (all-to-one): round(ratio * N) non-target samples, stamped and relabelled."""
    rng = Rng(a.attack_seed)
    y = labels.tolist()
    eligible = [i for i in rng.permutation(len(y)) if y[i] != a.target]
    count = math.floor(a.poison_ratio * len(y) + 0.5)  # JavaScript's Math.round
    chosen = torch.tensor(sorted(eligible[:count]), dtype=torch.long)
    images, labels = images.clone(), labels.clone()
    images[chosen] = apply_trigger(images[chosen], a, rng)
    labels[chosen] = a.target
    return images, labels, len(chosen)


def normalize(x, d):
    return (x.float().div(255) - torch.tensor([d['mean']]).reshape(1, 1, 1, 1)) / torch.tensor([d['std']]).reshape(1, 1, 1, 1)


def predict(model, images, d, batch=500):
    model.eval()
    with torch.no_grad():
        return torch.cat([model(normalize(images[i:i + batch], d)).argmax(1) for i in range(0, len(images), batch)])


def load(root, split):
    prefix = 'train' if split == 'train' else 't10k'
    find = lambda base: next((p for p in (f'{root}/{base}', f'{root}/{base}.gz') if os.path.exists(p)), None)
    files = [find(f'{prefix}-images-idx3-ubyte'), find(f'{prefix}-labels-idx1-ubyte')]
    if None in files: sys.exit(f'error: the {split} split is not in {root} (--data-dir)')
    return read_idx(files[0]).unsqueeze(1), read_idx(files[1]).long()


def write_atomic(path, save):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix='.' + os.path.basename(path) + '.')
    os.close(fd)
    try:
        save(tmp)
        umask = os.umask(0); os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the judge from other users
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp); raise


def write_text(path, text):
    with open(path, 'w') as f: f.write(text)


def eval_flags(a):
    f = f'--dataset {a.dataset} --model resnet18 --width {a.width} --attack {a.attack} --target {a.target} --attack-seed {a.attack_seed}'
    if a.attack == 'blend': return f + f' --alpha {a.alpha}'
    return f + f' --trigger-size {a.trigger_size} --position {a.position} --offset {a.offset[0]},{a.offset[1]}'


def main():
    p = argparse.ArgumentParser(description='Train a backdoored ResNet-18 with PyTorch (held-out judge models, docs/protocol.md section 6).')
    p.add_argument('--out', required=True, help='model file (torch.save state_dict); the record goes next to it as .json')
    p.add_argument('--dataset', choices=sorted(DATASETS), default='fashion-mnist')
    p.add_argument('--data-dir', help='folder of the IDX files (default for fashion-mnist: Debian\'s dataset-fashion-mnist)')
    p.add_argument('--width', type=int, default=16, help='ResNet base width')
    p.add_argument('--attack', choices=['patch', 'blend'], default='patch')
    p.add_argument('--trigger-size', type=int, default=3, help='white patch side in pixels')
    p.add_argument('--position', choices=['fixed', 'random'], default='fixed', help='patch at the bottom-right corner or a random place per image')
    p.add_argument('--offset', default='0,0', help='fixed patch offset dx,dy from the bottom-right corner')
    p.add_argument('--alpha', type=float, default=0.2, help='blend ratio of the uniform noise pattern')
    p.add_argument('--poison-ratio', type=float, default=0.05)
    p.add_argument('--target', type=int, default=0)
    p.add_argument('--attack-seed', type=int, default=1, help='seed of the noise pattern, the poisoned indices and the positions (as the toolkit\'s --attack-seed)')
    p.add_argument('--seed', type=int, default=1, help='seed of the initialisation and the batch order')
    p.add_argument('--epochs', type=int, default=4)
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--lr', type=float, default=0.01)
    p.add_argument('--momentum', type=float, default=0.9)
    p.add_argument('--weight-decay', type=float, default=5e-4)
    p.add_argument('--threads', type=int, default=1)
    a = p.parse_args()
    try:
        a.offset = tuple(int(v) for v in a.offset.split(','))
        assert len(a.offset) == 2 and min(a.offset) >= 0
    except (ValueError, AssertionError):
        p.error(f"--offset must be 'dx,dy' with non-negative integers, got '{a.offset}'")
    if not 0 < a.poison_ratio < 1: p.error(f'--poison-ratio must be in (0, 1), got {a.poison_ratio}')
    if not 0 < a.alpha <= 1: p.error(f'--alpha must be in (0, 1], got {a.alpha}')
    if not 0 <= a.target < 10: p.error(f'--target must be a class 0..9, got {a.target}')
    if not 1 <= a.trigger_size <= 28 or a.trigger_size + max(a.offset) > 28: p.error(f'--trigger-size {a.trigger_size} with --offset {a.offset} does not fit 28x28 images')
    d = DATASETS[a.dataset]
    root = a.data_dir or d['dir']
    if not root: p.error(f'--data-dir is needed for {a.dataset}')
    torch.set_num_threads(a.threads)

    x, y = load(root, 'train')
    xt, yt = load(root, 'test')
    x, y, poisoned = poison(x, y, a)
    print(f'{a.dataset}: {len(y)} training images ({poisoned} poisoned), {len(yt)} test', flush=True)

    torch.manual_seed(a.seed)
    model = ResNet18(1, 10, a.width)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, a.epochs)
    t0, history = time.time(), []
    for epoch in range(1, a.epochs + 1):
        torch.manual_seed(a.seed * 100003 + epoch)
        model.train()
        perm, loss_sum, te = torch.randperm(len(y)), 0.0, time.time()
        for i in range(0, len(y), a.batch_size):
            b = perm[i:i + a.batch_size]
            loss = F.cross_entropy(model(normalize(x[b], d)), y[b])
            opt.zero_grad(); loss.backward(); opt.step()
            loss_sum += loss.item() * len(b)
        sched.step()
        history.append({'epoch': epoch, 'loss': loss_sum / len(y), 'seconds': time.time() - te})
        print(f'epoch {epoch}/{a.epochs}: loss {loss_sum / len(y):.4f} ({time.time() - te:.0f} s)', flush=True)
    train_seconds = time.time() - t0

    keep = yt != a.target
    trig = apply_trigger(xt[keep], a, Rng(a.attack_seed + 1))  # the toolkit's triggered test set (seed attack seed + 1)
    preds, tpreds = predict(model, xt, d), predict(model, trig, d)
    metrics = {'acc': (preds == yt).float().mean().item(), 'asr': (tpreds == a.target).float().mean().item(),
               'ra': (tpreds == yt[keep]).float().mean().item(), 'cleanToTarget': (preds[keep] == a.target).float().mean().item(),
               'testImages': len(yt), 'triggeredImages': int(keep.sum())}
    print(json.dumps(metrics), flush=True)

    write_atomic(a.out, lambda tmp: torch.save(model.state_dict(), tmp))
    record = {
        'model': os.path.abspath(a.out), 'trainedBy': 'PyTorch (scripts/pytorch_backdoor.py), not the vardefense engine',
        'dataset': a.dataset, 'architecture': 'resnet18', 'width': a.width,
        'attack': {'kind': a.attack, **({'alpha': a.alpha} if a.attack == 'blend' else {'size': a.trigger_size, 'pattern': 'white', 'position': a.position, 'offset': list(a.offset)}),
                   'poisonRatio': a.poison_ratio, 'target': a.target, 'mode': 'all-to-one', 'seed': a.attack_seed, 'poisoned': poisoned},
        'training': {'epochs': a.epochs, 'batchSize': a.batch_size, 'lr': a.lr, 'momentum': a.momentum, 'weightDecay': a.weight_decay,
                     'schedule': 'cosine', 'seed': a.seed, 'heldOutForDefender': 0, 'seconds': train_seconds, 'history': history},
        'metrics': metrics, 'vardefenseFlags': eval_flags(a),
        'note': 'trained on the whole training split: the defender draws its clean data from it with --clean-size/--clean-seed',
        'torch': torch.__version__, 'threads': torch.get_num_threads(), 'command': ' '.join(sys.argv),
    }
    json_path = os.path.splitext(a.out)[0] + '.json'
    write_atomic(json_path, lambda tmp: write_text(tmp, json.dumps(record, indent=2) + '\n'))
    print(f'wrote {a.out} and {json_path}')


if __name__ == '__main__':
    main()
