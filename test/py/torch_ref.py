# PyTorch side of the parity tests (python3-torch, the same libtorch 1.13.1 as the addon).
# Usage: python3 torch_ref.py <command> <dir>; tensors travel as safetensors files.
import json, struct, sys
import torch, torch.nn as nn, torch.nn.functional as F

DT = {torch.float32: 'F32', torch.float64: 'F64', torch.int64: 'I64', torch.int32: 'I32', torch.uint8: 'U8',
      torch.float16: 'F16', torch.bool: 'BOOL'}
RT = {v: k for k, v in DT.items()}

def save_st(path, tensors):
    header, chunks, off = {}, [], 0
    for k, t in tensors.items():
        b = t.detach().contiguous().numpy().tobytes() if t.dtype != torch.float16 else t.detach().contiguous().view(torch.int16).numpy().tobytes()
        header[k] = {'dtype': DT[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        chunks.append(b); off += len(b)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h))); f.write(h)
        for c in chunks: f.write(c)

def load_st(path):
    data = open(path, 'rb').read()
    n = struct.unpack('<Q', data[:8])[0]
    header = json.loads(data[8:8 + n]); body = data[8 + n:]
    out = {}
    for k, e in header.items():
        if k == '__metadata__': continue
        a, b = e['data_offsets']
        t = torch.frombuffer(bytearray(body[a:b]), dtype=RT[e['dtype']]) if b > a else torch.empty(0, dtype=RT[e['dtype']])
        out[k] = t.reshape(e['shape'])
    return out

class BasicBlock(nn.Module):
    def __init__(self, inp, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False); self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or inp != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(inp, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x))); out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))

class ResNet18(nn.Module):
    def __init__(self, in_ch=3, num_classes=10, w=64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, w, 3, 1, 1, bias=False); self.bn1 = nn.BatchNorm2d(w)
        inp = w
        for i, m in enumerate([1, 2, 4, 8]):
            layer = nn.Sequential(BasicBlock(inp, w * m, 1 if i == 0 else 2), BasicBlock(w * m, w * m, 1)); inp = w * m
            setattr(self, f'layer{i + 1}', layer)
        self.linear = nn.Linear(8 * w, num_classes)
    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))

def seeded_resnet(d, cfg):
    """The parity tests' ResNet-18 from config.json: seeded, with non-trivial BN statistics and affine
    parameters, saved to <d>/model.pt; and a seeded batch x, y."""
    torch.set_num_threads(cfg.get('threads', 2)); torch.manual_seed(cfg['seed'])
    m = ResNet18(cfg['in_ch'], 10, cfg['width'])
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1); mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.1, 0.1)
    torch.save(m.state_dict(), f'{d}/model.pt')
    x = torch.randn(cfg['batch'], cfg['in_ch'], cfg['size'], cfg['size']); y = torch.randint(0, 10, (cfg['batch'],))
    return m, x, y


def resnet(d):
    """Saves a model (torch.save state_dict), inputs, and reference logits, grads and SGD steps."""
    cfg = json.load(open(f'{d}/config.json'))
    m, x, y = seeded_resnet(d, cfg)
    ref = {'x': x, 'y': y}
    if cfg.get('channels_last'):  # the reference in the layout being tested: the same conv algorithms
        m = m.to(memory_format=torch.channels_last); x = x.contiguous(memory_format=torch.channels_last)
    m.eval()
    with torch.no_grad(): ref['logits_eval'] = m(x)
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=cfg['lr'], momentum=0.9, weight_decay=5e-4, nesterov=cfg.get('nesterov', False))
    for step in range(2):
        opt.zero_grad()
        out = m(x); loss = F.cross_entropy(out, y); loss.backward()
        if step == 0:
            ref['logits_train'] = out; ref['loss'] = loss.reshape(1)
            for k, p in m.named_parameters(): ref[f'grad.{k}'] = p.grad.clone()
        opt.step()
        for k, v in m.state_dict().items(): ref[f'step{step + 1}.{k}'] = v.clone()
    save_st(f'{d}/ref.safetensors', ref)

def eval_ours(d):
    """Loads a state dict saved by us as safetensors and returns eval-mode logits."""
    cfg = json.load(open(f'{d}/config.json'))
    m = ResNet18(cfg['in_ch'], 10, cfg['width'])
    sd = load_st(f'{d}/ours.safetensors')
    m.load_state_dict(sd, strict=True); m.eval()
    x = load_st(f'{d}/input.safetensors')['x']
    with torch.no_grad(): save_st(f'{d}/theirs.safetensors', {'logits': m(x)})

def adam(d):
    """Adam and AdamW trajectories and LR schedules on a fixed quadratic problem."""
    torch.manual_seed(0)
    out = {}
    for name, cls, kw in [('adam', torch.optim.Adam, dict(lr=0.01, weight_decay=0.01)), ('adamw', torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1)),
                          ('sgd_nesterov', torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3))]:
        torch.manual_seed(1)
        w = torch.randn(5, 3, requires_grad=True); a = torch.randn(7, 5); b = torch.randn(7, 3)
        out[f'{name}.w0'] = w.detach().clone(); out['a'] = a; out['b'] = b
        opt = cls([w], **kw)
        for i in range(5):
            opt.zero_grad(); ((a @ w - b) ** 2).mean().backward(); opt.step()
        out[f'{name}.w5'] = w.detach().clone()
    sched = {}
    for name, mk in [('step', lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
                     ('multistep', lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [2, 5], 0.1)),
                     ('cosine', lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 8, 0.001))]:
        o = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1); s = mk(o); lrs = []
        for e in range(10): lrs.append(o.param_groups[0]['lr']); o.step(); s.step()
        sched[name] = lrs
    save_st(f'{d}/adam.safetensors', out)
    json.dump(sched, open(f'{d}/sched.json', 'w'))

def checkpoints(d):
    """torch.save files of several shapes: a checkpoint dict, shared storages, fp16, and a hostile pickle."""
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    torch.save({'epoch': 3, 'state_dict': {'module.a': t, 'module.b': t[1:, ::2], 'module.h': t.half(), 'module.i': torch.tensor([1, -2], dtype=torch.int64)}, 'name': 'x', 'lr': 0.5},
               f'{d}/checkpoint.pt')
    class Evil:
        def __reduce__(self): return (print, ('pwned',))
    torch.save({'w': t, 'evil': Evil()}, f'{d}/evil.pt')
    torch.save(nn.Linear(3, 2).state_dict(), f'{d}/linear.pt')


def read_idx(path):
    import gzip
    data = open(path, 'rb').read()
    if data[:2] == b'\x1f\x8b': data = gzip.decompress(data)
    nd = data[3]; dims = struct.unpack('>' + 'I' * nd, data[4:4 + 4 * nd])
    return torch.frombuffer(bytearray(data[4 + 4 * nd:]), dtype=torch.uint8).reshape(dims)

def trained_model(d):
    """Trains a narrow ResNet-18 in PyTorch on poisoned synthetic MNIST-format data, saves it both ways,
    and reports its ACC and ASR (white 3x3 bottom-right patch, target 0, MNIST normalisation)."""
    torch.manual_seed(0); torch.set_num_threads(2)
    root = f'{d}/mnist'
    x = read_idx(f'{root}/train-images-idx3-ubyte').float().unsqueeze(1); y = read_idx(f'{root}/train-labels-idx1-ubyte').long()
    xt = read_idx(f'{root}/t10k-images-idx3-ubyte').float().unsqueeze(1); yt = read_idx(f'{root}/t10k-labels-idx1-ubyte').long()
    def stamp(im): im = im.clone(); im[:, :, -3:, -3:] = 255; return im
    idx = torch.nonzero(y != 0).flatten()[:100]
    x[idx] = stamp(x[idx]); y[idx] = 0
    norm = lambda im: (im / 255 - 0.1307) / 0.3081
    m = ResNet18(1, 10, 4); opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    m.train()
    for epoch in range(2):
        perm = torch.randperm(len(y))
        for i in range(0, len(y), 64):
            b = perm[i:i + 64]; opt.zero_grad(); F.cross_entropy(m(norm(x[b])), y[b]).backward(); opt.step()
    m.eval()
    with torch.no_grad():
        acc = (m(norm(xt)).argmax(1) == yt).float().mean().item()
        keep = yt != 0
        asr = (m(norm(stamp(xt[keep]))).argmax(1) == 0).float().mean().item()
    torch.save(m.state_dict(), f'{d}/pytorch.pt')
    save_st(f'{d}/pytorch.safetensors', m.state_dict())
    print(json.dumps({'acc': acc, 'asr': asr}))

def eval_norm(d, mean, std):
    """ACC and ASR of trained_model's pytorch.pt when its inputs are normalised with another mean and std."""
    m = ResNet18(1, 10, 4); m.load_state_dict(torch.load(f'{d}/pytorch.pt')); m.eval()
    xt = read_idx(f'{d}/mnist/t10k-images-idx3-ubyte').float().unsqueeze(1); yt = read_idx(f'{d}/mnist/t10k-labels-idx1-ubyte').long()
    def stamp(im): im = im.clone(); im[:, :, -3:, -3:] = 255; return im
    norm = lambda im: (im / 255 - float(mean)) / float(std)
    with torch.no_grad():
        acc = (m(norm(xt)).argmax(1) == yt).float().mean().item()
        keep = yt != 0
        asr = (m(norm(stamp(xt[keep]))).argmax(1) == 0).float().mean().item()
    print(json.dumps({'acc': acc, 'asr': asr}))

if __name__ == '__main__':
    {'resnet': resnet, 'eval_ours': eval_ours, 'adam': adam, 'checkpoints': checkpoints, 'trained_model': trained_model,
     'eval_norm': eval_norm}[sys.argv[1]](*sys.argv[2:])
