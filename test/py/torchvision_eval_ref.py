# PyTorch side of the torchvision eval test: python3 torchvision_eval_ref.py <dir> <name> ...: for each
# name, a torchvision model with 1 input channel and 10 classes (torchvision_zoo_ref.build: randomised
# norms, calibrated statistics) saved to <dir>/<name>.pt, and its eval-mode accuracy and per-class
# accuracy on <dir>/fashion-mnist/t10k-* (idx, pixels/255 normalised with 0.286/0.353) printed as JSON.
import json, sys
import numpy as np, torch
from torchvision_zoo_ref import build


def idx(path, offset):
    return np.frombuffer(open(path, 'rb').read(), np.uint8, offset=offset)


def main(d, names):
    torch.set_num_threads(1)
    x = torch.tensor(idx(f'{d}/fashion-mnist/t10k-images-idx3-ubyte', 16).reshape(-1, 1, 28, 28).copy()).float().div(255).sub(0.286).div(0.353)
    y = torch.tensor(idx(f'{d}/fashion-mnist/t10k-labels-idx1-ubyte', 8).astype(np.int64))
    out = {}
    for name in names:
        torch.manual_seed(0)
        m = build(name, 1, 28)
        m.eval()
        torch.save(m.state_dict(), f'{d}/{name}.pt')
        with torch.no_grad():
            pred = m(x).argmax(1)
        out[name] = {'acc': (pred == y).float().mean().item(), 'perClassAcc': [(pred[y == c] == c).float().mean().item() for c in range(10)]}
    print(json.dumps(out))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2:])
