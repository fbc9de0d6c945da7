"""The two networks liverseg trains, in plain PyTorch (no MONAI, no
nnU-Net: the GPU machines have PyTorch only), for timing beside liverseg.

* `TutorialUNet`: MONAI's `UNet(spatial_dims=3, in_channels=1,
  out_channels=2, channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2),
  num_res_units=2, norm=BATCH)`, module for module, so its `state_dict`
  names are MONAI's (4,808,917 parameters). `python3 torch_nets.py
  --against-monai` loads MONAI's weights into it and compares the logits
  (run where MONAI is installed).
* `PlainUNet`: nnU-Net's `PlainConvUNet` as liverseg's `PlainUNetConfig`
  builds it: 3x3x3 convolutions with bias, instance norm (affine, eps
  1e-5), LeakyReLU(0.01), two convolutions per stage, transposed
  convolutions with kernel = stride, no deep supervision. As nnU-Net's
  decoder, it holds a 1x1x1 head per decoder stage (the parameters count
  them) and uses the last one.

Both take `quick=True` for the small versions `liverseg device-check
--quick` uses.
"""
import torch
from torch import nn


def _adn(channels, act=True):
    adn = nn.Sequential()
    adn.add_module("N", nn.BatchNorm3d(channels))
    adn.add_module("D", nn.Dropout(0.0))
    if act:
        adn.add_module("A", nn.PReLU())
    return adn


class _Convolution(nn.Sequential):
    """MONAI's `Convolution`: a `conv` child, then `adn` unless conv_only."""

    def __init__(self, cin, cout, stride, kernel=3, transposed=False, conv_only=False):
        super().__init__()
        pad = (kernel - 1) // 2
        if transposed:
            conv = nn.ConvTranspose3d(cin, cout, kernel, stride, pad, output_padding=stride - 1)
        else:
            conv = nn.Conv3d(cin, cout, kernel, stride, pad)
        self.add_module("conv", conv)
        if not conv_only:
            self.add_module("adn", _adn(cout))


class _ResidualUnit(nn.Module):
    def __init__(self, cin, cout, stride, subunits, last_conv_only=False):
        super().__init__()
        self.conv = nn.Sequential()
        c, s = cin, stride
        for i in range(subunits):
            only = last_conv_only and i == subunits - 1
            self.conv.add_module(f"unit{i}", _Convolution(c, cout, s, conv_only=only))
            c, s = cout, 1
        if stride != 1 or cin != cout:
            k = 3 if stride != 1 else 1
            self.residual = nn.Conv3d(cin, cout, k, stride, (k - 1) // 2)
        else:
            self.residual = nn.Identity()

    def forward(self, x):
        return self.conv(x) + self.residual(x)


class _Skip(nn.Module):
    def __init__(self, submodule):
        super().__init__()
        self.submodule = submodule

    def forward(self, x):
        return torch.cat([x, self.submodule(x)], dim=1)


class TutorialUNet(nn.Module):
    def __init__(self, quick=False, in_channels=1, out_channels=2):
        super().__init__()
        channels = (4, 8, 16) if quick else (16, 32, 64, 128, 256)
        strides = (2, 2) if quick else (2, 2, 2, 2)

        def block(cin, cout, chans, strs, top):
            c, s = chans[0], strs[0]
            if len(chans) > 2:
                sub, upc = block(c, c, chans[1:], strs[1:], False), c * 2
            else:
                sub, upc = _ResidualUnit(c, chans[1], 1, 2), c + chans[1]
            down = _ResidualUnit(cin, c, s, 2)
            up = nn.Sequential(
                _Convolution(upc, cout, s, transposed=True),
                _ResidualUnit(cout, cout, 1, 1, last_conv_only=top),
            )
            return nn.Sequential(down, _Skip(sub), up)

        self.model = block(in_channels, out_channels, channels, strides, True)

    def forward(self, x):
        return self.model(x)


def _stage(cin, cout, stride, convs):
    layers = []
    for i in range(convs):
        layers += [
            nn.Conv3d(cin if i == 0 else cout, cout, 3, stride if i == 0 else 1, 1),
            nn.InstanceNorm3d(cout, eps=1e-5, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
        ]
    return nn.Sequential(*layers)


class PlainUNet(nn.Module):
    def __init__(self, quick=False, in_channels=1, out_channels=2):
        super().__init__()
        features = (4, 8, 16) if quick else (32, 64, 128, 256, 320, 320)
        strides = (1, 2, 2) if quick else (1, 2, 2, 2, 2, 2)
        self.encoder = nn.ModuleList()
        c = in_channels
        for f, s in zip(features, strides):
            self.encoder.append(_stage(c, f, s, 2))
            c = f
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        self.heads = nn.ModuleList()
        for i in range(len(features) - 1, 0, -1):
            s = strides[i]
            self.up.append(nn.ConvTranspose3d(features[i], features[i - 1], s, s))
            self.decoder.append(_stage(2 * features[i - 1], features[i - 1], 1, 2))
            self.heads.append(nn.Conv3d(features[i - 1], out_channels, 1))

    def forward(self, x):
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for up, dec in zip(self.up, self.decoder):
            x = dec(torch.cat([skips.pop(), up(x)], dim=1))
        return self.heads[-1](x)


def parameters(net):
    return sum(p.numel() for p in net.parameters())


def _against_monai():
    from monai.networks.layers import Norm
    from monai.networks.nets import UNet

    ref = UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(16, 32, 64, 128, 256),
               strides=(2, 2, 2, 2), num_res_units=2, norm=Norm.BATCH).eval()
    ours = TutorialUNet().eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 1, 64, 64, 32)
    with torch.no_grad():
        gap = (ref(x) - ours(x)).abs().max().item()
    print(f"TutorialUNet: {parameters(ours):,} parameters (MONAI {parameters(ref):,}), "
          f"max |logit difference| {gap:.2e}")
    assert parameters(ours) == parameters(ref) == 4_808_917 and gap == 0.0


if __name__ == "__main__":
    import sys

    if "--against-monai" in sys.argv:
        _against_monai()
    print(f"TutorialUNet {parameters(TutorialUNet()):,}, PlainUNet {parameters(PlainUNet()):,} parameters")
