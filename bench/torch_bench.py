# PyTorch side of `npm run bench`: the same models, batch sizes and thread count as ours.
# Prints one JSON line per model: {"model", "train_img_s", "infer_img_s", "train_step_ms": [...]}.
# Usage: torch_bench.py <model> <threads> <train steps> <infer steps> <width> [fp32|bf16] [contiguous|channels-last] [batch]
# zoo-<arch>: torchvision's model as scripts/judges/zoo.py trains it (one input channel, 32x32, 10 classes).
# bf16 is PyTorch's recipe: forward and loss under torch.autocast('cpu', dtype=torch.bfloat16), backward
# and the optimiser step outside it; channels-last is model.to(memory_format=torch.channels_last) with a
# channels-last input.
import json, sys, time
import torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, __file__.rsplit('/', 2)[0] + '/test/py')
from torch_ref import ResNet18  # noqa: E402  (the parity tests' model: same names and graph as ours)

class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3); self.conv2 = nn.Conv2d(32, 64, 3); self.fc1 = nn.Linear(9216, 128); self.fc2 = nn.Linear(128, 10)
    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))

def run(name, model, shape, batch, train_steps, infer_steps, precision='fp32', layout='contiguous'):
    torch.manual_seed(0)
    x = torch.randn(batch, *shape); y = torch.randint(0, 10, (batch,))
    if layout == 'channels-last':
        model = model.to(memory_format=torch.channels_last); x = x.contiguous(memory_format=torch.channels_last)
    bf16 = precision == 'bf16'
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train(); ts = []; tc = []
    for i in range(train_steps + 1):
        t0 = time.perf_counter(); c0 = time.process_time()
        opt.zero_grad(set_to_none=True)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        loss.backward(); opt.step()
        ts.append(time.perf_counter() - t0); tc.append(time.process_time() - c0)
    model.eval(); its = []; ic = []
    with torch.no_grad():
        for i in range(infer_steps + 1):
            t0 = time.perf_counter(); c0 = time.process_time()
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16): model(x)
            its.append(time.perf_counter() - t0); ic.append(time.process_time() - c0)
    med = lambda v: sorted(v)[len(v) // 2]
    print(json.dumps({'model': name, 'train_img_s': batch / med(ts[1:]), 'infer_img_s': batch / med(its[1:]),
                      'train_img_cpu_s': batch / med(tc[1:]), 'infer_img_cpu_s': batch / med(ic[1:]),
                      'train_step_ms': [t * 1000 for t in ts[1:]]}), flush=True)

if __name__ == '__main__':
    which, threads, train_steps, infer_steps, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    precision = sys.argv[6] if len(sys.argv) > 6 else 'fp32'; layout = sys.argv[7] if len(sys.argv) > 7 else 'contiguous'
    batch = int(sys.argv[8]) if len(sys.argv) > 8 else 128
    if which.startswith('zoo-'):
        sys.path.insert(0, __file__.rsplit('/', 2)[0] + '/scripts/judges')
        import zoo  # noqa: E402
        run(which, zoo.build(which[4:]), (1, zoo.SIZE, zoo.SIZE), batch, train_steps, infer_steps, precision, layout)
    elif which == 'mnist-cnn': run(which, SmallCNN(), (1, 28, 28), 128, train_steps, infer_steps, precision, layout)
    elif which == 'resnet18-fmnist': run(which, ResNet18(1, 10, width), (1, 28, 28), 128, train_steps, infer_steps, precision, layout)
    else: run(which, ResNet18(3, 10, width), (3, 32, 32), 128, train_steps, infer_steps, precision, layout)
