#!/usr/bin/env python
"""The benchmark's PyTorch reference: the nets of docs/benchmarks.md written
plainly in PyTorch, their training and inference images/s on the CPU, and
(``--end-to-end``) one epoch of a plain PyTorch training loop on a CIFAR
archive, the counterpart of ``tools/train.py -c configs/resnet20.yaml``.

Used only by ``benchmarks/benchmark.py --torch-python PY``; run it with the python
of a separate venv that has torch (``pip install torch==2.13.0``). torch is
never a dependency of ppresvar, and this file imports nothing from it (no
paddle either): the two sides meet only in the parameter counts, which
benchmarks/benchmark.py compares.

    python reference/torch_reference.py --models "resnet20;rir18:fused=false" --steps 3 --warmup 1 --batch 8
    python reference/torch_reference.py --end-to-end --data cifar-10-python.tar.gz --val-size 5000

Threads: ``--threads`` (default: every core this process may run on), set
with ``torch.set_num_threads`` whatever OMP_NUM_THREADS says; the result
records ``torch.get_num_threads()``. Prints one line ``BENCH_RESULT {json}``.
"""
import argparse
import json
import math
import os
import pickle
import statistics
import tarfile
import time

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F

RESULT_TAG = "BENCH_RESULT "


# --------------------------------------------------------------- the nets

def conv3x3(cin, cout, stride=1, bias=False):
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=bias)


class ZeroPadShortcut(nn.Module):
    """Option A (He et al. 2015): subsample, append zero channels."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride, self.pad = stride, cout - cin

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        return torch.cat([x, torch.zeros_like(x[:, :self.pad])], 1) if self.pad else x


class DyReLU(nn.Module):
    """Dynamic ReLU (Chen et al. 2020, eqs. 1-4), written from the paper:
    ``y_c = max_k (a_c^k x_c + b_c^k)``, ``a^k = alpha^k + lambda_a da^k``,
    ``b^k = beta^k + lambda_b db^k``, residuals ``d = 2 gate(fc2(relu(fc1(
    mean_hw x)))) - 1``; mode A: one set of K pairs per image, B: per image
    and channel, C: B's residuals times ``min(HW/3 softmax_hw(conv1x1 x / tau), 1)``.
    ``gate``: sigmoid, or ``hard``: relu6(z + 3) / 6."""

    def __init__(self, c, mode="C", k=2, reduction=8, lambda_a=1.0, lambda_b=0.5, tau=10.0, gate="sigmoid"):
        super().__init__()
        self.c, self.k, self.mode, self.tau, self.gate = c, k, mode, tau, gate
        self.fc1 = nn.Linear(c, c // reduction)
        self.fc2 = nn.Linear(c // reduction, 2 * k * (1 if mode == "A" else c))
        self.spatial = nn.Conv2d(c, 1, 1) if mode == "C" else None
        self.register_buffer("lambdas", torch.tensor([lambda_a] * k + [lambda_b] * k))
        self.register_buffer("init_v", torch.tensor([1.0] + [0.0] * (k - 1) + [0.0] * k))

    def forward(self, x):
        k = self.k
        z = self.fc2(F.relu(self.fc1(x.mean((2, 3)))))
        d = 2 * (F.relu6(z + 3) / 6 if self.gate == "hard" else torch.sigmoid(z)) - 1
        d = d.view(-1, 1 if self.mode == "A" else self.c, 2 * k, 1, 1)
        if self.mode == "C":
            s = self.spatial(x)
            hw = x.shape[2] * x.shape[3]
            p = F.softmax(s.flatten(2) / self.tau, -1).view_as(s)
            d = d * torch.clamp(p * (hw / 3.0), max=1.0).unsqueeze(2)
        coef = d * self.lambdas.view(1, 1, -1, 1, 1) + self.init_v.view(1, 1, -1, 1, 1)
        y = coef[:, :, 0] * x + coef[:, :, k]
        for i in range(1, k):
            y = torch.maximum(y, coef[:, :, i] * x + coef[:, :, k + i])
        return y


class NAMChannel(nn.Module):
    """NAM channel attention (Liu et al. 2021): sigmoid(BN(x) * |g|/sum|g|) * x."""

    def __init__(self, c):
        super().__init__()
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        w = self.bn.weight.abs() / self.bn.weight.abs().sum()
        return torch.sigmoid(self.bn(x) * w.view(1, -1, 1, 1)) * x


def relu(c):
    return nn.ReLU(inplace=True)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, shortcut, act, attn):
        super().__init__()
        self.conv1, self.bn1, self.act1 = conv3x3(cin, planes, stride), nn.BatchNorm2d(planes), act(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.attn = attn(planes) if attn else None
        self.shortcut, self.act_out = shortcut, act(planes)

    def forward(self, x):
        y = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        if self.attn is not None:
            y = self.attn(y)
        return self.act_out(y + (x if self.shortcut is None else self.shortcut(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, shortcut, act, attn):
        super().__init__()
        out = planes * 4
        self.conv1, self.bn1, self.act1 = nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes), act(planes)
        self.conv2, self.bn2, self.act2 = conv3x3(planes, planes, stride), nn.BatchNorm2d(planes), act(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, out, 1, bias=False), nn.BatchNorm2d(out)
        self.attn = attn(out) if attn else None
        self.shortcut, self.act_out = shortcut, act(out)

    def forward(self, x):
        y = self.act1(self.bn1(self.conv1(x)))
        y = self.bn3(self.conv3(self.act2(self.bn2(self.conv2(y)))))
        if self.attn is not None:
            y = self.attn(y)
        return self.act_out(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet(nn.Module):
    """CIFAR stem (3x3, stride 1, no max-pool), stages, average pool, fc."""

    def __init__(self, block, layers, widths, shortcut="B", act=relu, attn=None, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(conv3x3(3, widths[0]), nn.BatchNorm2d(widths[0]), act(widths[0]))
        cin, blocks = widths[0], []
        for i, (planes, n) in enumerate(zip(widths, layers)):
            for j in range(n):
                s = 2 if i > 0 and j == 0 else 1
                out = planes * block.expansion
                sc = None
                if s != 1 or cin != out:
                    sc = ZeroPadShortcut(cin, out, s) if shortcut == "A" else nn.Sequential(
                        nn.Conv2d(cin, out, 1, s, bias=False), nn.BatchNorm2d(out))
                blocks.append(block(cin, planes, s, sc, act, attn))
                cin = out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


class CrossConv(nn.Module):
    """RiR's four 3x3 convolutions (r->r, t->r, r->t, t->t), run as one
    convolution of the concatenated streams (``fused``) or as four."""

    def __init__(self, cin, cout, stride, fused):
        super().__init__()
        self.rr, self.tr, self.rt, self.tt = [conv3x3(cin, cout, stride, bias=True) for _ in range(4)]
        self.stride, self.fused = stride, fused

    def forward(self, r, t):
        if not self.fused:
            return self.rr(r) + self.tr(t), self.rt(r) + self.tt(t)
        w = torch.cat([torch.cat([self.rr.weight, self.tr.weight], 1), torch.cat([self.rt.weight, self.tt.weight], 1)], 0)
        b = torch.cat([self.rr.bias + self.tr.bias, self.rt.bias + self.tt.bias])
        return torch.chunk(F.conv2d(torch.cat([r, t], 1), w, b, self.stride, 1), 2, 1)


def projection(cin, cout, stride):
    return None if cin == cout and stride == 1 else nn.Conv2d(cin, cout, 1, stride)


class ResNetInit(nn.Module):
    def __init__(self, cin, cout, stride, fused):
        super().__init__()
        self.cross = CrossConv(cin, cout, stride, fused)
        self.shortcut = projection(cin, cout, stride)
        self.bn_r, self.bn_t = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)

    def forward(self, r, t):
        yr, yt = self.cross(r, t)
        yr = yr + (r if self.shortcut is None else self.shortcut(r))
        return F.relu(self.bn_r(yr)), F.relu(self.bn_t(yt))


class RiRBlock(nn.Module):
    """Two generalized residual layers; the outer shortcut on the residual stream (paper wiring)."""

    def __init__(self, cin, cout, stride, fused):
        super().__init__()
        self.l1, self.l2 = ResNetInit(cin, cout, stride, fused), ResNetInit(cout, cout, 1, fused)
        self.shortcut = projection(cin, cout, stride)

    def forward(self, r, t):
        yr, yt = self.l2(*self.l1(r, t))
        return yr + (r if self.shortcut is None else self.shortcut(r)), yt


class RiR(nn.Module):
    """Targ et al. 2016: a conv-BN-ReLU stem per stream, RiR blocks, concat, 1x1 conv classifier, pool."""

    def __init__(self, channels=(48, 96, 192), blocks=(2, 3, 3), num_classes=10, fused=True):
        super().__init__()
        c0 = channels[0]
        self.stem_r = nn.Sequential(conv3x3(3, c0, bias=True), nn.BatchNorm2d(c0), nn.ReLU())
        self.stem_t = nn.Sequential(conv3x3(3, c0, bias=True), nn.BatchNorm2d(c0), nn.ReLU())
        plan, cin = [], c0
        for i, (cout, n) in enumerate(zip(channels, blocks)):
            for j in range(n):
                plan.append(RiRBlock(cin, cout, 2 if i > 0 and j == 0 else 1, fused))
                cin = cout
        self.blocks = nn.ModuleList(plan)
        self.head = nn.Conv2d(2 * cin, num_classes, 1)

    def forward(self, x):
        r, t = self.stem_r(x), self.stem_t(x)
        for b in self.blocks:
            r, t = b(r, t)
        return torch.flatten(F.adaptive_avg_pool2d(self.head(torch.cat([r, t], 1)), 1), 1)


def dyrelu_c(c):
    return DyReLU(c, "C")


def resnet18_dyrelu(mode, widths=(64, 128, 256, 512), reduction=8, gate="sigmoid", **o):
    """ResNet-18 (CIFAR stem) with DyReLU at the stem and at both activations of every block."""
    return ResNet(BasicBlock, [2] * 4, tuple(widths),
                  act=lambda c: DyReLU(c, mode, reduction=reduction, gate=gate), **o)


MODELS = {
    "resnet20": lambda **o: ResNet(BasicBlock, [3] * 3, (16, 32, 64), "A", **o),
    "resnet56": lambda **o: ResNet(BasicBlock, [9] * 3, (16, 32, 64), "A", **o),
    "resnet18": lambda widths=(64, 128, 256, 512), **o: ResNet(BasicBlock, [2] * 4, tuple(widths), **o),
    "resnet18_dyrelu_a": lambda **o: resnet18_dyrelu("A", **o),
    "resnet18_dyrelu_b": lambda **o: resnet18_dyrelu("B", **o),
    "resnet18_dyrelu_c": lambda **o: resnet18_dyrelu("C", **o),
    "resnet50_nam": lambda **o: ResNet(Bottleneck, [3, 4, 6, 3], (64, 128, 256, 512), attn=NAMChannel, **o),
    "rir18": lambda **o: RiR(**o),
}


# ------------------------------------------------------------------ timing

def time_steps(step, warmup, steps, max_seconds=None, min_steps=3):
    for _ in range(warmup):
        step()
    times = []
    deadline = None if max_seconds is None else time.perf_counter() + max_seconds
    while len(times) < steps:
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
        if deadline is not None and len(times) >= min_steps and time.perf_counter() > deadline:
            break
    return statistics.median(times), len(times)


def parse_value(v):
    low = v.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v.strip()


def parse_spec(spec):
    name, _, opts = spec.partition(":")
    options = {}
    for item in filter(None, opts.split(",")):
        k, _, v = item.partition("=")
        options[k.strip()] = parse_value(v)
    return name.strip(), options


def label(name, options):
    return name + "".join(" %s=%s" % (k, v) for k, v in sorted(options.items()))


def measure(name, options, a):
    torch.manual_seed(0)
    make = MODELS[name]
    model = make(num_classes=10, **options)
    out = {"params_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    x = torch.randn(a.batch, 3, 32, 32)
    y = torch.randint(0, 10, (a.batch,))

    for key, channels_last in (("train_img_s", False), ("train_channels_last_img_s", True)):
        torch.manual_seed(0)
        m = make(num_classes=10, **options)
        xx = x
        if channels_last:
            m = m.to(memory_format=torch.channels_last)
            xx = x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        m.train()

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(m(xx), y)
            loss.backward()
            opt.step()

        med, n = time_steps(step, a.warmup, a.steps, a.max_seconds)
        out[key] = a.batch / med
        out[key.replace("img_s", "steps")] = n

    model.eval()
    xi = torch.randn(a.infer_batch, 3, 32, 32)
    with torch.inference_mode():
        med, _ = time_steps(lambda: model(xi), a.warmup, a.steps, a.max_seconds)
        out["eager_img_s"] = a.infer_batch / med
        if not a.no_compile:
            try:
                t = time.perf_counter()
                compiled = torch.compile(model)
                compiled(xi)
                out["compile_seconds"] = time.perf_counter() - t
                med, _ = time_steps(lambda: compiled(xi), a.warmup, a.steps, a.max_seconds)
                out["compile_img_s"] = a.infer_batch / med
            except Exception as e:  # no compiler here, etc.
                out["compile_error"] = "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")
    return out


# ------------------------------------------------------------ end to end

def read_cifar(path, split="train"):
    """``(uint8 images N x 3 x 32 x 32, int64 labels)`` of one split of a
    CIFAR-10/100 python-version archive: for ``train`` the members whose name
    holds ``data_batch`` (CIFAR-10) or ends with ``/train`` (CIFAR-100), in
    sorted order, as paddle.vision.datasets reads them; for ``test`` the
    member ``test_batch`` or ``.../test``."""
    def wanted(name):
        if split == "train":
            return "data_batch" in name or name.endswith("/train")
        return "test_batch" in name or name.endswith("/test")

    images, labels = [], []
    with tarfile.open(path, "r") as tar:
        names = sorted(m.name for m in tar if wanted(m.name))
        for name in names:
            batch = pickle.load(tar.extractfile(name), encoding="bytes")
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch.get(b"labels", batch.get(b"fine_labels")), dtype=np.int64))
    if not images:
        raise SystemExit("error: %s holds no CIFAR %s batches" % (path, split))
    return np.concatenate(images), np.concatenate(labels)


def holdout_indices(n, val_size, seed):
    """The held-out split ppresvar makes (``val_size``: a count, or a
    fraction when < 1): ``(train indices, val indices)``, both sorted."""
    k = int(round(val_size * n)) if 0 < val_size < 1 else int(val_size)
    if not 0 < k < n:
        raise SystemExit("error: val_size %r leaves no training or validation images of %d" % (val_size, n))
    order = np.random.RandomState(seed).permutation(n)
    return np.sort(order[k:]), np.sort(order[:k])


class Loader(object):
    """Batches of a uint8 NCHW array, augmented with numpy on whole batches:
    4-pixel zero padding + random 32x32 crop + horizontal flip (training),
    then ``(x / 255 - mean) / std``; channels-last float32 tensors."""

    def __init__(self, images, labels, batch, mean, std, train, seed=0, augment="padcrop", drop_last=False):
        self.images, self.labels, self.batch, self.train = images, labels, batch, train
        self.augment, self.drop_last = augment, drop_last
        self.mean = np.asarray(mean, np.float32).reshape(1, 3, 1, 1) * 255.0
        self.inv_std = 1.0 / (np.asarray(std, np.float32).reshape(1, 3, 1, 1) * 255.0)
        self.rng = np.random.RandomState(seed)
        self.epoch = 0

    def __len__(self):
        if self.drop_last and self.train:
            return len(self.images) // self.batch
        return -(-len(self.images) // self.batch)

    def _resized_crop(self, x, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)):
        """RandomResizedCrop(32) per image, as torchvision and paddle.vision
        draw it (10 tries of an area fraction in ``scale`` and a log-uniform
        aspect ratio, else a centre crop clamped to ``ratio``), resized back
        to the input size bilinearly; then the flip."""
        b, _, h, w = x.shape
        out = np.empty((b, 3, h, w), np.float32)
        for i in range(b):
            for _ in range(10):
                area = h * w * self.rng.uniform(*scale)
                r = math.exp(self.rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
                cw, ch = int(round(math.sqrt(area * r))), int(round(math.sqrt(area / r)))
                if 0 < cw <= w and 0 < ch <= h:
                    top, left = self.rng.randint(0, h - ch + 1), self.rng.randint(0, w - cw + 1)
                    break
            else:
                cw, ch = w, h
                if w / h < ratio[0]:
                    ch = int(round(w / ratio[0]))
                elif w / h > ratio[1]:
                    cw = int(round(h * ratio[1]))
                top, left = (h - ch) // 2, (w - cw) // 2
            crop = torch.from_numpy(np.ascontiguousarray(x[i:i + 1, :, top:top + ch, left:left + cw],
                                                         dtype=np.float32))
            out[i] = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)[0].numpy()
        flip = self.rng.rand(b) < 0.5
        out[flip] = out[flip][..., ::-1]
        return out

    def _augment(self, x):
        if self.augment == "resizedcrop":
            return self._resized_crop(x)
        b = x.shape[0]
        padded = np.zeros((b, 3, 40, 40), np.uint8)
        padded[:, :, 4:36, 4:36] = x
        oy, ox = self.rng.randint(0, 9, size=b), self.rng.randint(0, 9, size=b)
        rows = (oy[:, None] + np.arange(32))[:, None, :, None]
        cols = (ox[:, None] + np.arange(32))[:, None, None, :]
        flip = self.rng.rand(b) < 0.5
        cols = np.where(flip[:, None, None, None], cols[..., ::-1], cols)
        return padded[np.arange(b)[:, None, None, None], np.arange(3)[None, :, None, None], rows, cols]

    def __iter__(self):
        n = len(self.images)
        order = self.rng.permutation(n) if self.train else np.arange(n)
        for i in range(0, len(self) * self.batch, self.batch):
            idx = order[i:i + self.batch]
            x = self.images[idx]
            if self.train:
                x = self._augment(x)
            x = (x.astype(np.float32) - self.mean) * self.inv_std
            yield (torch.from_numpy(x).contiguous(memory_format=torch.channels_last),
                   torch.from_numpy(self.labels[idx]))


def end_to_end(a):
    """One epoch (or ``--epochs``) of training with validation after each,
    timed like ppresvar's trainer: ``epoch_time_s`` is the wall time of the
    training pass (data and augmentation included) plus validation."""
    t = time.perf_counter()
    images, labels = read_cifar(a.data, "train")
    train_idx, val_idx = holdout_indices(len(images), a.val_size, a.split_seed)
    load_s = time.perf_counter() - t
    torch.manual_seed(a.seed)
    train = Loader(images[train_idx], labels[train_idx], a.batch, a.mean, a.std, True, a.seed)
    val = Loader(images[val_idx], labels[val_idx], a.eval_batch, a.mean, a.std, False)
    model = MODELS["resnet20"](num_classes=100 if labels.max() >= 10 else 10)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay)
    epochs = []
    for epoch in range(1, a.epochs + 1):
        start = time.perf_counter()
        model.train()
        seen = hits = 0
        loss_sum = compute = 0.0
        for x, y in train:
            t0 = time.perf_counter()
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            hits += int((logits.detach().argmax(1) == y).sum())
            seen += len(y)
            compute += time.perf_counter() - t0
        train_s = time.perf_counter() - start
        model.eval()
        vseen = vhits = 0
        vloss = 0.0
        with torch.inference_mode():
            for x, y in val:
                logits = model(x)
                vloss += float(F.cross_entropy(logits, y, reduction="sum"))
                vhits += int((logits.argmax(1) == y).sum())
                vseen += len(y)
        epoch_s = time.perf_counter() - start
        epochs.append({"epoch": epoch, "epoch_time_s": epoch_s, "train_time_s": train_s,
                       "val_time_s": epoch_s - train_s, "train_img_s": seen / epoch_s,
                       "compute_img_s": seen / compute if compute > 0 else None,
                       "train_loss": loss_sum / seen, "train_top1": hits / seen,
                       "val_loss": vloss / vseen, "val_top1": vhits / vseen})
    last = epochs[-1]
    return dict(last, epochs=epochs, train_images=len(train_idx), val_images=len(val_idx), batch=a.batch,
                eval_batch=a.eval_batch, iterations_per_epoch=len(train), data_load_s=load_s,
                channels_last=True, model="resnet20 (option A)")


# ------------------------------------------------ a whole training run (--train)

def build_model(a, num_classes, init=False):
    """``--model`` with ``--widths`` and, for the DyReLU ResNet-18s,
    ``--reduction`` and ``--dyrelu-gate``; with ``init``, initialised as
    ppresvar initialises it (``init_like_ppresvar``) and then the DyReLU
    coefficient layers as ``--dyrelu-init`` says."""
    options = {"widths": a.widths} if a.widths else {}
    if a.model.startswith("resnet18_dyrelu"):
        options.update(reduction=a.reduction, gate=a.dyrelu_gate)
    model = MODELS[a.model](num_classes=num_classes, **options)
    if not init:
        return model
    init_like_ppresvar(model)
    for m in model.modules():
        if not isinstance(m, DyReLU):
            continue
        if a.dyrelu_init == "relu":  # every DyReLU starts as a ReLU (ppresvar's dyrelu_init='relu')
            nn.init.zeros_(m.fc2.weight)
            nn.init.zeros_(m.fc2.bias)
        elif a.dyrelu_init == "torch":  # PyTorch's own nn.Linear init, as a PyTorch DyReLU built plainly has
            m.fc1.reset_parameters()
            m.fc2.reset_parameters()
    return model


def init_like_ppresvar(model):
    """ppresvar's initialisation (layers/weight_init.py): conv weights Kaiming
    normal in fan-out mode, BN gamma 1 and beta 0, and paddle's default for
    the classifier (Xavier uniform weight, zero bias)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def evaluate(model, loader):
    model.eval()
    seen = top1 = top5 = 0
    loss = 0.0
    with torch.inference_mode():
        for x, y in loader:
            logits = model(x)
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            top = logits.topk(5, 1).indices
            top1 += int((top[:, 0] == y).sum())
            top5 += int((top == y[:, None]).any(1).sum())
            seen += len(y)
    return {"loss": loss / seen, "top1": top1 / seen, "top5": top5 / seen, "samples": seen}


def lr_factor(schedule, total, milestones=(), gamma=0.1):
    """The learning rate's factor after ``t`` iterations, as ppresvar's
    schedules with ``unit: iteration`` give it: ``cosine`` from 1 to 0 over
    ``total`` iterations (``Cosine``), or ``step``: ``gamma`` to the number
    of milestones reached (``MultiStep``: the rate of iteration 32000,
    counted from 0, is already divided)."""
    if schedule == "cosine":
        return lambda t: 0.5 * (1.0 + math.cos(math.pi * min(t, total) / total))
    marks = sorted(int(m) for m in milestones)
    return lambda t: gamma ** sum(1 for m in marks if t >= m)


def train_run(a):
    """A whole training run, resumable: ``--epochs`` (or ``--iterations``,
    the last epoch then partial) of SGD with a per-iteration learning rate
    schedule (``--schedule``: a cosine from ``--lr`` to 0, ppresvar's
    ``Cosine``; or ``step``: ``--lr`` times ``--gamma`` at each of
    ``--milestones``, ppresvar's ``MultiStep``), both with ``unit:
    iteration``; validation on the held-out split after each epoch, one JSON
    line per epoch in ``OUT/metrics.jsonl`` (ppresvar's keys), the state in
    ``OUT/last.pt`` after each epoch (``--train`` again continues from it),
    and at the end ``OUT/test.json``: the test split on the last
    iteration's weights."""
    os.makedirs(a.out, exist_ok=True)
    images, labels = read_cifar(a.data, "train")
    test_x, test_y = read_cifar(a.data, "test")
    train_idx, val_idx = holdout_indices(len(images), a.val_size, a.split_seed)
    torch.manual_seed(a.seed)
    train = Loader(images[train_idx], labels[train_idx], a.batch, a.mean, a.std, True, a.seed, a.augment,
                   a.drop_last)
    val = Loader(images[val_idx], labels[val_idx], a.eval_batch, a.mean, a.std, False)
    test = Loader(test_x, test_y, a.eval_batch, a.mean, a.std, False)
    model = build_model(a, int(labels.max()) + 1, init=True).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay)
    if a.iterations:
        total = a.iterations
        a.epochs = -(-total // len(train))
    else:
        total = a.epochs * len(train)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(a.schedule, total, a.milestones, a.gamma))
    ckpt, metrics = os.path.join(a.out, "last.pt"), os.path.join(a.out, "metrics.jsonl")
    start_epoch = 0
    if os.path.exists(ckpt):
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        train.rng.set_state(state["loader_rng"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch = state["epoch"]
    kept = []
    if os.path.exists(metrics):  # lines past the checkpoint's epoch belong to a killed epoch
        with open(metrics) as f:
            kept = [line for line in f if line.strip() and json.loads(line)["epoch"] <= start_epoch]
    with open(metrics, "w") as f:
        f.writelines(kept)
    for epoch in range(start_epoch + 1, a.epochs + 1):
        start = time.perf_counter()
        model.train()
        seen = hits = 0
        loss_sum = 0.0
        for x, y in train:
            if sched.last_epoch >= total:
                break  # --iterations reached: the last epoch is partial
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=a.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if not math.isfinite(loss.item()):
                raise SystemExit("error: loss is %s at epoch %d" % (loss.item(), epoch))
            loss_sum += loss.item() * len(y)
            hits += int((logits.detach().argmax(1) == y).sum())
            seen += len(y)
        train_s = time.perf_counter() - start
        lr = opt.param_groups[0]["lr"]  # as ppresvar logs it: the rate after the epoch's last step
        v = evaluate(model, val)
        record = {"epoch": epoch, "iterations": sched.last_epoch, "lr": lr, "train_loss": loss_sum / seen,
                  "train_top1": hits / seen,
                  "val_loss": v["loss"], "val_top1": v["top1"], "val_top5": v["top5"],
                  "epoch_time_s": time.perf_counter() - start, "images_per_s": seen / train_s}
        with open(metrics, "a") as f:
            f.write(json.dumps(record) + "\n")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "loader_rng": train.rng.get_state(), "torch_rng": torch.get_rng_state(), "epoch": epoch},
                   ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)
        print("epoch %d/%d  train_loss %.4f  train_top1 %.2f%%  val_top1 %.2f%%  lr %.4g  %.1fs" % (
            epoch, a.epochs, record["train_loss"], 100 * record["train_top1"], 100 * v["top1"], lr,
            record["epoch_time_s"]), flush=True)
    t = evaluate(model, test)
    result = dict(t, split="test", arch="%s (PyTorch reference)" % a.model,
                  weights="last epoch (%d, iteration %d)" % (a.epochs, sched.last_epoch),
                  ema=False, torch=torch.__version__, threads=torch.get_num_threads())
    with open(os.path.join(a.out, "test.json"), "w") as f:
        json.dump(result, f)
    print("test top-1 %.2f%%" % (100 * t["top1"]), flush=True)
    return result


STAGES = {"resnet20": [3, 3, 3], "resnet56": [9, 9, 9], "resnet18": [2, 2, 2, 2], "resnet18_dyrelu_a": [2, 2, 2, 2],
          "resnet18_dyrelu_b": [2, 2, 2, 2], "resnet18_dyrelu_c": [2, 2, 2, 2]}


def ppresvar_state(model, name):
    """The state dict of a ``ResNet`` of this file under ppresvar's names, as
    numpy arrays: ``blocks.<i>`` -> ``stages.<s>.<j>``, BN ``running_mean`` /
    ``running_var`` -> ``_mean`` / ``_variance`` (``num_batches_tracked``
    dropped), Linear weights transposed (paddle stores them [in, out])."""
    where = [(s, j) for s, n in enumerate(STAGES[name]) for j in range(n)]
    linear = {k + ".weight" for k, m in model.named_modules() if isinstance(m, nn.Linear)}
    out = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        a = value.detach().cpu().numpy().copy()  # a copy: training goes on in place
        if key in linear:
            a = a.T
        parts = key.split(".")
        if parts[0] == "blocks":
            s, j = where[int(parts[1])]
            parts = ["stages", str(s), str(j)] + parts[2:]
        parts[-1] = {"running_mean": "_mean", "running_var": "_variance"}.get(parts[-1], parts[-1])
        out[".".join(parts)] = np.ascontiguousarray(a)
    return out


def to_ppresvar(a):
    """``OUT/model.safetensors`` from a finished run's ``OUT/last.pt``: the
    last weights under ppresvar's names, for ``tools/eval.py``."""
    from safetensors.numpy import save_file

    if a.model not in STAGES:
        raise SystemExit("error: no ppresvar name mapping for %s" % a.model)
    model = build_model(a, a.num_classes)
    model.load_state_dict(torch.load(os.path.join(a.out, "last.pt"), weights_only=False)["model"])
    path = os.path.join(a.out, "model.safetensors")
    save_file(ppresvar_state(model, a.model), path, metadata={"format": "paddle-state-dict",
                                                              "source": "reference/torch_reference.py %s" % a.model})
    return path


def step_check(a):
    """``--step-check FILE``: ``--steps`` SGD steps of ``--model`` on fixed
    random batches, written to FILE (npz): the initial weights under
    ppresvar's names (``w/...``), the batches, each step's loss and the final
    weights (``f/...``), for ``reference/step_parity.py`` to repeat in
    ppresvar; the final weights of the same steps in float64 (``d/...``),
    the float32 rounding floor; and in float32 on another thread count
    (``t/...``: 1 thread, or 2 if this run has 1), how far rounding alone
    parts two float32 runs of one framework. One process, batch norm over
    the whole batch."""
    rng = np.random.RandomState(a.seed)
    xs = rng.randn(a.steps, a.batch, 3, 32, 32).astype(np.float32)
    ys = rng.randint(0, 10, size=(a.steps, a.batch)).astype(np.int64)
    threads = torch.get_num_threads()
    out, losses = {}, None
    for dtype, key, n in ((torch.float64, "d/", threads), (torch.float32, "f/", threads),
                          (torch.float32, "t/", 1 if threads > 1 else 2)):
        torch.set_num_threads(n)
        torch.manual_seed(a.seed)
        model = build_model(a, 10, init=True).to(dtype)
        if key == "f/":
            out.update({"w/" + k: v for k, v in ppresvar_state(model, a.model).items()})
        opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay)
        model.train()
        run_losses = []
        for x, y in zip(xs, ys):
            loss = F.cross_entropy(model(torch.from_numpy(x).to(dtype)), torch.from_numpy(y),
                                   label_smoothing=a.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run_losses.append(loss.item())
        out.update({key + k: v for k, v in ppresvar_state(model, a.model).items()})
        if key == "f/":
            losses = run_losses
    torch.set_num_threads(threads)
    np.savez(a.step_check, x=xs, y=ys, loss=np.array(losses), lr=a.lr, momentum=a.momentum,
             weight_decay=a.weight_decay, threads=np.array([threads, 1 if threads > 1 else 2]), **out)
    return losses


def set_threads(n):
    n = int(n or available_cores())
    torch.set_num_threads(n)
    return n


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=";".join(MODELS))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--infer-batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--max-seconds", type=float, default=None)
    p.add_argument("--threads", type=int, default=None, help="default: every core this process may run on")
    p.add_argument("--no-compile", action="store_true")
    e = p.add_argument_group("end to end (--end-to-end): one epoch of ResNet-20 on a CIFAR archive")
    e.add_argument("--end-to-end", action="store_true")
    e.add_argument("--data", default=None, help="CIFAR-10 python-version archive (cifar-10-python.tar.gz)")
    e.add_argument("--val-size", type=float, default=5000, help="held-out images: a count, or a fraction < 1")
    e.add_argument("--split-seed", type=int, default=0)
    e.add_argument("--eval-batch", type=int, default=500)
    e.add_argument("--epochs", type=int, default=1)
    e.add_argument("--lr", type=float, default=0.1)
    e.add_argument("--momentum", type=float, default=0.9)
    e.add_argument("--weight-decay", type=float, default=1e-4)
    e.add_argument("--mean", type=float, nargs=3, default=[0.4914, 0.4822, 0.4465])
    e.add_argument("--std", type=float, nargs=3, default=[0.2470, 0.2435, 0.2616])
    e.add_argument("--seed", type=int, default=42)
    t = p.add_argument_group("a whole training run (--train; also takes --data, --epochs, --lr, --seed...)")
    t.add_argument("--train", action="store_true")
    t.add_argument("--model", default="resnet20", choices=sorted(MODELS))
    t.add_argument("--out", default=None, help="run directory: metrics.jsonl, last.pt, test.json")
    t.add_argument("--iterations", type=int, default=None,
                   help="stop after this many iterations (the last epoch partial); --epochs is then derived")
    t.add_argument("--schedule", default="cosine", choices=("cosine", "step"),
                   help="per-iteration learning rate: cosine to 0, or step (x --gamma at each of --milestones)")
    t.add_argument("--milestones", type=int, nargs="*", default=[], help="iterations of the step schedule's drops")
    t.add_argument("--gamma", type=float, default=0.1, help="the step schedule's factor")
    t.add_argument("--widths", type=int, nargs=4, default=None, help="ResNet-18's stage widths (e.g. 16 32 64 128)")
    t.add_argument("--augment", default="padcrop", choices=("padcrop", "resizedcrop"),
                   help="padcrop: 4-pixel padding, 32x32 crop, flip; resizedcrop: RandomResizedCrop(32), flip")
    t.add_argument("--drop-last", action="store_true", help="drop the last partial training batch")
    t.add_argument("--label-smoothing", type=float, default=0.0)
    t.add_argument("--reduction", type=int, default=8, help="DyReLU's reduction")
    t.add_argument("--dyrelu-init", default="random", choices=("random", "relu", "torch"),
                   help="the coefficient layers: random: paddle's Linear init (Xavier uniform, zero bias), as "
                        "ppresvar's 'random'; relu: fc2 zero (a fresh DyReLU is a ReLU); torch: PyTorch's own "
                        "nn.Linear init (uniform +-1/sqrt(fan_in), biases too)")
    t.add_argument("--dyrelu-gate", default="sigmoid", choices=("sigmoid", "hard"))
    t.add_argument("--step-check", metavar="FILE", default=None,
                   help="--steps SGD steps on fixed batches, written to FILE for reference/step_parity.py")
    t.add_argument("--to-ppresvar", action="store_true",
                   help="write OUT/model.safetensors (ppresvar's names) from a finished run's OUT/last.pt")
    t.add_argument("--num-classes", type=int, default=10, help="with --to-ppresvar")
    a = p.parse_args()
    threads = set_threads(a.threads)
    res = {"torch": torch.__version__, "threads": torch.get_num_threads(), "threads_asked": threads,
           "interop_threads": torch.get_num_interop_threads(),
           "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
    if a.step_check:
        print("losses", " ".join("%.6f" % v for v in step_check(a)))
        return
    if a.to_ppresvar:
        if not a.out:
            p.error("--to-ppresvar needs --out DIR (a finished --train run)")
        print("wrote %s" % to_ppresvar(a))
        return
    if a.train:
        if not a.data or not a.out:
            p.error("--train needs --data ARCHIVE and --out DIR")
        if a.schedule == "step" and not a.milestones:
            p.error("--schedule step needs --milestones")
        res.update(train_run(a))
        print(RESULT_TAG + json.dumps(res), flush=True)
        return
    if a.end_to_end:
        if not a.data:
            p.error("--end-to-end needs --data ARCHIVE")
        res.update(end_to_end(a))
        res["threads"] = torch.get_num_threads()
        print(RESULT_TAG + json.dumps(res), flush=True)
        return
    res["models"] = {}
    for spec in filter(None, a.models.split(";")):
        name, options = parse_spec(spec)
        if name not in MODELS:
            res["models"][label(name, options)] = {"error": "no PyTorch reference for %s" % name}
            continue
        res["models"][label(name, options)] = measure(name, options, a)
        res["models"][label(name, options)]["threads"] = torch.get_num_threads()
    print(RESULT_TAG + json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
