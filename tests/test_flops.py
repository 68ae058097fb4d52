"""ppresvar.flops: paddle.flops' rules, checked against figures written out
by hand and against seed 000's paddle.flops output."""
import paddle.nn as nn

import ppresvar
from ppresvar.flops import count_flops, count_params

# Seed 000: paddle.flops(model, (128, 3, 32, 32)) of its RiR-18 (each stream
# with an outer shortcut, the projection counted once per call) and of the RiR
# paper's ResNet-18.
SEED_RIR18_B128 = 164831593728
SEED_RESNET18_B128 = 165021910272


def resnet20_flops_by_hand():
    """ResNet-20 (He et al. 2015 sec. 4.2) at 32x32, per image: 3x3 convs
    without bias, eval-mode BN 2 per element, option A shortcuts (no FLOPs),
    8x8 global average pool (64 adds + 1 division per channel), 64x10 fc."""
    conv = 16 * 32 * 32 * (3 * 9)                                   # stem
    conv += 6 * 16 * 32 * 32 * (16 * 9)                             # stage 1
    conv += 32 * 16 * 16 * (16 * 9) + 5 * 32 * 16 * 16 * (32 * 9)   # stage 2
    conv += 64 * 8 * 8 * (32 * 9) + 5 * 64 * 8 * 8 * (64 * 9)       # stage 3
    bn = 2 * (7 * 16 * 32 * 32 + 6 * 32 * 16 * 16 + 6 * 64 * 8 * 8)
    pool = (8 * 8 + 1) * 64
    fc = 64 * 10
    return conv + bn + pool + fc


def test_resnet20_matches_the_hand_count():
    assert resnet20_flops_by_hand() == 40_932_032
    assert count_flops(ppresvar.create_model("resnet20")) == resnet20_flops_by_hand()


def test_count_is_linear_in_the_batch():
    m = ppresvar.create_model("resnet20")
    assert count_flops(m, (128, 3, 32, 32)) == 128 * count_flops(m, (1, 3, 32, 32))


def test_rir18_seed_wiring_gives_the_seeds_figure_at_batch_128():
    # The seed's own call: batch 128. Its forward applied one projection to
    # both streams, which counts as two calls: the same as wiring='seed'.
    m = ppresvar.create_model("rir18", wiring="seed")
    per_image = count_flops(m)
    assert 128 * per_image == SEED_RIR18_B128
    assert count_flops(m, (128, 3, 32, 32)) == SEED_RIR18_B128


def test_rir_resnet18_gives_the_seeds_figure():
    # Linearity is checked above; batch 1 keeps the test fast.
    assert 128 * count_flops(ppresvar.create_model("rir_resnet18")) == SEED_RESNET18_B128


def test_rir18_paper_wiring_saves_the_transient_projections():
    # Paper wiring: no outer projection on the transient stream, one fewer
    # 1x1 conv (with bias) at the start of stages 2 and 3.
    saved = 96 * 16 * 16 * (48 + 1) + 192 * 8 * 8 * (96 + 1)
    paper = count_flops(ppresvar.create_model("rir18"))
    assert paper == SEED_RIR18_B128 // 128 - saved
    assert count_flops(ppresvar.create_model("rir18", fused=False)) == paper


class _Pair(nn.Layer):
    """Runs a conv twice and counts itself as 7 per call."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(2, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(self.conv(x)[:, :2])[:, :2]

    def flops(self, inputs, output):
        return 7


def test_rules_per_call_and_own_flops_method():
    net = nn.Sequential(
        nn.Conv2D(2, 2, 3, padding=1, bias_attr=False),          # 2*16 * (2*9)
        nn.Conv2D(2, 4, 3, padding=1, groups=2),                 # 4*16 * (2/2*9 + 1)
        nn.BatchNorm2D(4), nn.ReLU(), nn.Dropout(0.5),           # 2 * 4*16
        nn.AvgPool2D(2),                                         # 4*4
        nn.AdaptiveAvgPool2D(1),                                 # (4 + 1) * 4
        nn.Flatten(), nn.Linear(4, 5))                           # 4 * 5
    expected = 2 * 16 * 18 + 4 * 16 * 10 + 2 * 64 + 16 + 5 * 4 + 20
    assert count_flops(net, (1, 2, 4, 4)) == expected
    # A layer with its own flops() counts once per call; its conv (called
    # twice inside) is not counted.
    pair = nn.Sequential(_Pair(), _Pair())
    assert count_flops(pair, (1, 2, 4, 4)) == 14


def test_modes_restored_and_hooks_removed():
    net = nn.Sequential(nn.Conv2D(3, 4, 3), nn.BatchNorm2D(4), nn.Dropout(0.5))
    net.train()
    net[2].eval()
    count_flops(net, (1, 3, 8, 8))
    assert net.training and net[0].training and net[1].training and not net[2].training
    for m in [net] + list(net.sublayers()):
        assert len(m._forward_post_hooks) == 0
    # BN ran in eval mode: its running statistics did not move.
    assert float(net[1]._mean.abs().sum()) == 0.0


def test_count_params_includes_bn_statistics():
    net = nn.Sequential(nn.Conv2D(3, 4, 3), nn.BatchNorm2D(4))
    total, trainable = count_params(net)
    assert trainable == 3 * 4 * 9 + 4 + 2 * 4
    assert total == trainable + 2 * 4
