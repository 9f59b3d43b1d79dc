#!/usr/bin/python3
# The judge factory (issue 27, docs/protocol.md section 10): trains backdoored classifiers with PyTorch
# (Debian's python3-torch), with its own poisoning code and RNG (scripts/judges/triggers.py; nothing
# ported from the toolkit), over a spread of recipes, so that the defenses are judged on models that
# differ from the toolkit's in training and trigger, not only in seed.
#
#   factory.py train --recipe RECIPE.json|'{...}' --out DIR [--threads N] [--data-dir D]
#   factory.py train-list --list experiments/judges/dev.json --root /work/judges/dev [--only SEED,...]
#   factory.py evaluate --judge DIR --weights purified.safetensors|model.pt     (ACC / ASR / RA, JSON)
#   factory.py self-check                                                     (architecture names)
#
# A judge folder holds model.pt (torch.save state dict, the toolkit's parameter names), judge.json (the
# recipe, ACC / ASR measured here, timings, the exact toolkit flags), test-triggered.npz (the triggered
# test images with the attacker's labels: `vardefense eval --test it --attack none` reads its ACC as the
# ASR, with no knowledge of this code), and for a patch at a fixed place or a blend trigger.png +
# mask.png (`--trigger-image/--trigger-mask [--alpha]`, exact).
import argparse, copy, hashlib, json, os, platform, subprocess, sys, time
import numpy as np
import torch, torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fileio, models, triggers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))

DEFAULTS = {
    'dataset': 'fashion-mnist', 'arch': 'resnet18', 'width': 16, 'epochs': 4, 'batch_size': 128,
    'optimizer': {'kind': 'sgd', 'lr': 0.05, 'momentum': 0.9, 'weight_decay': 5e-4, 'nesterov': False},
    'schedule': {'kind': 'cosine'}, 'augment': 'none', 'label_smoothing': 0.0, 'norm': None, 'train_subset': None,
}
OPT_DEFAULTS = {'sgd': {'lr': 0.05, 'momentum': 0.9, 'weight_decay': 5e-4, 'nesterov': False},
                'adam': {'lr': 1e-3, 'weight_decay': 0.0}}


def fail(msg):
    raise SystemExit(f'error: {msg}')


def normalise_recipe(r):
    """The recipe with every default filled in and checked: what judge.json records."""
    r = copy.deepcopy(r)
    for k in ('seed', 'attack'):
        if k not in r: fail(f'recipe: missing {k!r}')
    out = {'name': r.pop('name', f'judge-{r["seed"]}'), 'seed': int(r.pop('seed'))}
    for k, v in DEFAULTS.items(): out[k] = copy.deepcopy(r.pop(k, v))
    out['attack'] = r.pop('attack')
    if r: fail(f'recipe: unknown keys {sorted(r)}')
    if out['dataset'] not in fileio.DATASETS: fail(f'recipe: dataset {out["dataset"]!r} unknown')
    if out['arch'] not in models.ARCHS: fail(f'recipe: arch {out["arch"]!r} not one of {models.ARCHS}')
    o = out['optimizer']
    if o.get('kind') not in OPT_DEFAULTS: fail(f'recipe: optimizer kind {o.get("kind")!r} not sgd or adam')
    out['optimizer'] = {'kind': o['kind'], **OPT_DEFAULTS[o['kind']], **{k: v for k, v in o.items() if k != 'kind'}}
    s = out['schedule']
    if s.get('kind') not in ('constant', 'step', 'cosine'): fail(f'recipe: schedule {s} not constant, step or cosine')
    if s['kind'] == 'step': out['schedule'] = {'kind': 'step', 'milestones': s.get('milestones', [0.5, 0.75]), 'gamma': s.get('gamma', 0.1)}
    if out['augment'] not in ('none', 'crop-flip'): fail(f'recipe: augment {out["augment"]!r} not none or crop-flip')
    if not 1 <= out['epochs'] <= 100: fail('recipe: epochs out of range')
    a = out['attack']
    a.setdefault('mode', 'all-to-one'); a.setdefault('target', 0)
    if a['mode'] not in ('all-to-one', 'all-to-all', 'clean-label'): fail(f'recipe: attack mode {a["mode"]!r}')
    if not 0 < a.get('poison_ratio', -1) < 0.5: fail('recipe: attack.poison_ratio must be in (0, 0.5)')
    t = a.get('trigger') or fail('recipe: attack.trigger missing')
    if t.get('kind') == 'patch': t.setdefault('margin', 0); t.setdefault('position', 'br')
    if t.get('kind') == 'blend' and not 0 < t.get('alpha', -1) <= 1: fail('recipe: blend alpha must be in (0, 1]')
    if t.get('kind') == 'sig': t.setdefault('orientation', 'horizontal'); t.setdefault('phase', 0.0)
    if t.get('kind') == 'warp': t.setdefault('cross_ratio', 2)
    if out['norm'] is None:
        d = fileio.DATASETS[out['dataset']]
        out['norm'] = {'mean': d['mean'], 'std': d['std'], 'toolkit_default': True}
    return out


def provenance():
    """The factory's own source (sha256 of its modules) and the checkout's commit, for judge.json."""
    h = hashlib.sha256()
    for f in ('factory.py', 'fileio.py', 'models.py', 'triggers.py'):
        h.update(f.encode()); h.update(open(os.path.join(HERE, f), 'rb').read())
    try:
        commit = subprocess.run(['git', '-C', REPO, 'rev-parse', 'HEAD'], capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {'factory_sha256': h.hexdigest(), 'git_commit': commit}


def normalise(x, norm):
    return (x.float() / 255 - norm['mean']) / norm['std']


def augment(xb, g):
    """crop-flip: zero-pad 2, random 28x28 crop, horizontal flip with p 0.5 (uint8 in, uint8 out)."""
    n, c, h, w = xb.shape
    pad = F.pad(xb, (2, 2, 2, 2))
    ox = torch.randint(0, 5, (n,), generator=g); oy = torch.randint(0, 5, (n,), generator=g)
    flip = torch.rand(n, generator=g) < 0.5
    out = torch.empty_like(xb)
    for i in range(n):
        im = pad[i, :, oy[i]:oy[i] + h, ox[i]:ox[i] + w]
        out[i] = im.flip(-1) if flip[i] else im
    return out


def predict(model, x, norm, batch=1000):
    model.eval()
    with torch.no_grad():
        return torch.cat([model(normalise(torch.from_numpy(x[i:i + batch]), norm)).argmax(1) for i in range(0, len(x), batch)]).numpy()


def measure(model, recipe, test, triggered):
    (x, y), (xt, yt_target, yt_true) = test, triggered
    target = recipe['attack']['target']
    p = predict(model, x, recipe['norm'])
    pt = predict(model, xt, recipe['norm'])
    nt = y != target
    return {'acc': float((p == y).mean()), 'asr': float((pt == yt_target).mean()), 'ra': float((pt == yt_true).mean()),
            'clean_to_target': float((p[nt] == target).mean()) if recipe['attack']['mode'] != 'all-to-all' else None,
            'test_images': int(len(y)), 'triggered_images': int(len(xt))}


def toolkit_flags(recipe, judge_dir, has_image):
    """(model flags, trigger flags or None, exact): how `vardefense defend|eval` describes this judge."""
    d = os.path.abspath(judge_dir)
    a, t = recipe['attack'], recipe['attack']['trigger']
    model = f'--weights {d}/model.pt --model {recipe["arch"]} --width {recipe["width"]} --dataset {recipe["dataset"]}'
    if not recipe['norm'].get('toolkit_default'): model += f' --norm-mean {recipe["norm"]["mean"]} --norm-std {recipe["norm"]["std"]}'
    label = '--all-to-all' if a['mode'] == 'all-to-all' else f'--target {a["target"]}'
    if has_image:
        alpha = '' if t['kind'] == 'patch' else f' --alpha {t["alpha"]}'
        return model, f'--trigger-image {d}/trigger.png --trigger-mask {d}/mask.png{alpha} {label}', True
    if t['kind'] == 'patch' and t['position'] == 'random' and t['pattern'] in ('white', 'checker'):
        # the same patch, uniform over every place as here, but the toolkit's own draw of the places
        pattern = 'white' if t['pattern'] == 'white' else 'checkerboard'
        return model, f'--attack patch --trigger-size {t["size"]} --pattern {pattern} --position random {label}', False
    if t['kind'] == 'sig' and t['orientation'] == 'horizontal' and t['phase'] == 0:
        return model, f'--attack sig --sig-delta {t["delta"]} --sig-freq {t["freq"]} {label}', True
    return model, None, False


def train(recipe, out_dir, threads, data_dir=None, quiet=False):
    r = normalise_recipe(recipe)
    torch.set_num_threads(threads)
    log = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    ds = fileio.DATASETS[r['dataset']]
    root = data_dir or ds['dir']
    x, y = fileio.load_split(root, 'train')
    xte, yte = fileio.load_split(root, 'test')
    if r['train_subset']:
        keep = np.sort(triggers.rng(r['seed'], 'subset').permutation(len(y))[:r['train_subset']])
        x, y = x[keep], y[keep]
    classes = ds['classes']
    _, _, h, w = x.shape
    xp, yp, prec = triggers.poison(x, y, r['attack'], r['seed'], classes)
    trig = triggers.triggered_test(xte, yte, r['attack'], r['seed'], classes)
    log(f'{r["name"]} (seed {r["seed"]}): {len(yp)} training images, {prec["poisoned"]} poisoned'
        f'{", %d cross" % prec["cross"] if prec["cross"] else ""}; {r["arch"]} width {r["width"]}, {r["epochs"]} epochs, {threads} thread(s)')

    torch.manual_seed(r['seed'])
    model = models.build(r['arch'], r['width'], x.shape[1], classes)
    model = model.to(memory_format=torch.channels_last)  # about 1.3x faster on CPU; saved contiguous
    o = r['optimizer']
    if o['kind'] == 'sgd':
        opt = torch.optim.SGD(model.parameters(), lr=o['lr'], momentum=o['momentum'], weight_decay=o['weight_decay'], nesterov=o['nesterov'])
    else:
        opt = torch.optim.Adam(model.parameters(), lr=o['lr'], weight_decay=o['weight_decay'])
    s, E = r['schedule'], r['epochs']
    if s['kind'] == 'constant': sched = None
    elif s['kind'] == 'step': sched = torch.optim.lr_scheduler.MultiStepLR(opt, [max(1, round(m * E)) for m in s['milestones']], s['gamma'])
    else: sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, E)
    g = torch.Generator().manual_seed(r['seed'] * 7919 + 17)
    X, Y = torch.from_numpy(xp), torch.from_numpy(yp)
    t0, history = time.time(), []
    for epoch in range(1, E + 1):
        model.train()
        te, lr = time.time(), opt.param_groups[0]['lr']
        perm = torch.randperm(len(Y), generator=g)
        loss_sum, correct = 0.0, 0
        for i in range(0, len(Y), r['batch_size']):
            b = perm[i:i + r['batch_size']]
            if len(b) < 2: continue  # batch norm needs two images
            xb = X[b]
            if r['augment'] == 'crop-flip': xb = augment(xb, g)
            logits = model(normalise(xb, r['norm']).contiguous(memory_format=torch.channels_last))
            loss = F.cross_entropy(logits, Y[b], label_smoothing=r['label_smoothing'])
            opt.zero_grad(); loss.backward(); opt.step()
            loss_sum += loss.item() * len(b); correct += int((logits.argmax(1) == Y[b]).sum())
        if sched: sched.step()
        row = {'epoch': epoch, 'lr': lr, 'loss': loss_sum / len(Y), 'train_acc': correct / len(Y), 'seconds': round(time.time() - te, 1)}
        history.append(row)
        log(f'epoch {epoch}/{E}: lr {lr:.4g}, loss {row["loss"]:.4f}, train acc {100 * row["train_acc"]:.2f}% ({row["seconds"]:.0f} s)')
    train_seconds = time.time() - t0
    metrics = measure(model, r, (xte[:, :, :, :], yte), trig)
    log(f'{r["name"]}: ACC {100 * metrics["acc"]:.2f}%, ASR {100 * metrics["asr"]:.2f}%, RA {100 * metrics["ra"]:.2f}% '
        f'({metrics["triggered_images"]} triggered test images), {train_seconds:.0f} s of training')

    os.makedirs(out_dir, exist_ok=True)
    fileio.save_state_dict(os.path.join(out_dir, 'model.pt'), {k: v.contiguous() for k, v in model.state_dict().items()})
    fileio.write_npz(os.path.join(out_dir, 'test-triggered.npz'), x=trig[0][:, 0], y=trig[1], y_true=trig[2])
    image = triggers.image_trigger(r['attack']['trigger'], r['seed'], h, w)
    files = {'model': 'model.pt', 'test_triggered': 'test-triggered.npz'}
    if image is not None:
        fileio.write_png(os.path.join(out_dir, 'trigger.png'), image[0])
        fileio.write_png(os.path.join(out_dir, 'mask.png'), image[1])
        files.update({'trigger_image': 'trigger.png', 'trigger_mask': 'mask.png', 'alpha': image[2]})
    model_flags, trigger_flags, exact = toolkit_flags(r, out_dir, image is not None)
    d = os.path.abspath(out_dir)
    record = {
        'judge': r['name'], 'seed': r['seed'], 'recipe': r,
        'trained_by': 'PyTorch, scripts/judges/factory.py (its own poisoning and RNG; not the vardefense engine, not a port of it)',
        'metrics': metrics, 'poisoning': prec, 'train_seconds': round(train_seconds, 1), 'history': history,
        'threads': threads, 'torch': torch.__version__, 'numpy': np.__version__, 'python': platform.python_version(),
        'machine': platform.machine(), **provenance(), 'files': files,
        'model_flags': model_flags,
        'trigger_flags': trigger_flags,
        'trigger_flags_exact': exact,
        'defend_flags': model_flags + (f' {trigger_flags}' if trigger_flags else ''),
        'asr': {
            'note': ('the trigger flags describe this exact trigger' if exact else
                     'the toolkit\'s trigger flags cannot express this exact trigger' + (' (same trigger family, the toolkit\'s own random places)' if trigger_flags else '')) +
                    '; the reference ASR of a purified model is measured on test-triggered.npz, by either command (the toolkit\'s "acc" there is the ASR)',
            'toolkit': f'vardefense eval --weights PURIFIED --model {r["arch"]} --width {r["width"]} --dataset {r["dataset"]}'
                       + ('' if r['norm'].get('toolkit_default') else f' --norm-mean {r["norm"]["mean"]} --norm-std {r["norm"]["std"]}')
                       + f' --test {d}/test-triggered.npz --attack none --json',
            'factory': f'/usr/bin/python3 scripts/judges/factory.py evaluate --judge {d} --weights PURIFIED',
        },
        'note': 'trained on the whole training split (or train_subset): the defender draws clean data from it with --clean-size/--clean-seed',
    }
    fileio.write_json(os.path.join(out_dir, 'judge.json'), record)
    log(f'wrote {d}/judge.json')
    return record


def evaluate(judge_dir, weights, threads, data_dir=None):
    j = json.load(open(os.path.join(judge_dir, 'judge.json')))
    r = j['recipe']
    torch.set_num_threads(threads)
    ds = fileio.DATASETS[r['dataset']]
    xte, yte = fileio.load_split(data_dir or ds['dir'], 'test')
    npz = np.load(os.path.join(judge_dir, 'test-triggered.npz'))
    trig = (npz['x'][:, None], npz['y'], npz['y_true'])
    model = models.build(r['arch'], r['width'], xte.shape[1], ds['classes'])
    sd = fileio.load_weights(weights)
    own = model.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith('num_batches_tracked')]
    extra = [k for k in sd if k not in own]
    if missing or extra: fail(f'{weights}: not a {r["arch"]} of width {r["width"]} (missing {missing[:5]}, unexpected {extra[:5]})')
    for k, v in sd.items():
        if tuple(v.shape) != tuple(own[k].shape): fail(f'{weights}: {k} has shape {list(v.shape)}, expected {list(own[k].shape)}')
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()}, strict=False)
    m = measure(model, r, (xte, yte), trig)
    return {'judge': j['judge'], 'weights': os.path.abspath(weights), **m, 'before': {k: j['metrics'][k] for k in ('acc', 'asr', 'ra')}}


def self_check():
    """The architectures' parameter names and shapes against torchvision's resnet18 (cifar stem) and the
    project's reference ResNet-18 (test/py/torch_ref.py): the names the toolkit's loaders expect."""
    def layout(m): return [(k, tuple(v.shape)) for k, v in m.state_dict().items()]
    tv = layout(models.torchvision_reference()); ours = layout(models.build('torchvision-resnet18-cifar', 64))
    assert tv == ours, 'torchvision-resnet18-cifar differs from torchvision.models.resnet18'
    sys.path.insert(0, os.path.join(REPO, 'test', 'py'))
    from torch_ref import ResNet18  # the check only; the factory does not use it
    assert layout(ResNet18(1, 10, 16)) == layout(models.build('resnet18', 16)), 'resnet18 differs from test/py/torch_ref.py'
    pre = [k for k, _ in layout(models.build('preact-resnet18', 16))]
    assert 'layer2.0.shortcut.0.weight' in pre and 'layer1.0.bn1.running_var' in pre and 'linear.weight' in pre and not any(k.startswith('bn') for k in pre)
    print('self-check: torchvision-resnet18-cifar = torchvision.models.resnet18 (cifar stem) at width 64; resnet18 = test/py/torch_ref.py; preact-resnet18 names as src/models/preact-resnet.ts')


def read_recipe(s):
    return json.loads(s) if s.lstrip().startswith('{') else json.load(open(s))


def main():
    p = argparse.ArgumentParser(description='The judge factory (issue 27): backdoored models trained by PyTorch with their own poisoning.')
    sub = p.add_subparsers(dest='cmd', required=True)
    t = sub.add_parser('train', help='train one judge from a recipe')
    t.add_argument('--recipe', required=True, help='a recipe JSON file or inline JSON')
    t.add_argument('--out', required=True, help='the judge folder')
    t.add_argument('--threads', type=int, default=1)
    t.add_argument('--data-dir')
    tl = sub.add_parser('train-list', help='train the judges of a list (experiments/judges/*.json) into ROOT/<seed>, skipping those done')
    tl.add_argument('--list', required=True)
    tl.add_argument('--root', required=True)
    tl.add_argument('--only', help='comma-separated seeds')
    tl.add_argument('--threads', type=int, default=1)
    tl.add_argument('--data-dir')
    e = sub.add_parser('evaluate', help='ACC / ASR / RA of (purified) weights on a judge\'s test sets')
    e.add_argument('--judge', required=True)
    e.add_argument('--weights', required=True, help='.safetensors (e.g. defend\'s model.safetensors) or a torch.save state dict')
    e.add_argument('--threads', type=int, default=1)
    e.add_argument('--data-dir')
    sub.add_parser('self-check', help='check the architectures\' parameter names')
    a = p.parse_args()
    if a.cmd == 'train':
        train(read_recipe(a.recipe), a.out, a.threads, a.data_dir)
    elif a.cmd == 'train-list':
        judges = json.load(open(a.list))['judges']
        only = None if not a.only else {int(s) for s in a.only.split(',')}
        for rec in judges:
            if only is not None and rec['seed'] not in only: continue
            d = os.path.join(a.root, str(rec['seed']))
            if os.path.exists(os.path.join(d, 'judge.json')):
                print(f'{d}: done already', flush=True); continue
            train(rec, d, a.threads, a.data_dir)
    elif a.cmd == 'evaluate':
        print(json.dumps(evaluate(a.judge, a.weights, a.threads, a.data_dir)))
    else:
        self_check()


if __name__ == '__main__':
    main()
