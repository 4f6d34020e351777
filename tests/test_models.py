import pytest
import torch
from torch import nn

from simclr_lib.config import TrainConfig
from simclr_lib.models import (
    ENCODERS,
    ProjectionHead,
    SimCLR,
    SmallCNN,
    build_encoder,
    build_model,
)


@pytest.mark.parametrize("name,dim", [("small_cnn", 256), ("resnet18", 512), ("resnet34", 512),
                                      ("resnet50", 2048)])
def test_encoder_output_is_feature_dim(name, dim):
    f = build_encoder(name, small_images=True).eval()
    assert f.feature_dim == dim
    with torch.no_grad():
        h = f(torch.rand(2, 3, 32, 32))
    assert h.shape == (2, dim)


def test_small_image_stem_keeps_resolution():
    small = build_encoder("resnet18", small_images=True)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, nn.Identity)
    assert isinstance(small.fc, nn.Identity)
    big = build_encoder("resnet18", small_images=False)
    assert big.conv1.kernel_size == (7, 7) and big.conv1.stride == (2, 2)
    assert isinstance(big.maxpool, nn.MaxPool2d)
    # the stem decides the spatial size entering layer1: 32 vs 8
    x = torch.rand(1, 3, 32, 32)
    s = small.maxpool(small.relu(small.bn1(small.conv1(x))))
    b = big.maxpool(big.relu(big.bn1(big.conv1(x))))
    assert s.shape[-1] == 32 and b.shape[-1] == 8


def test_resnet18_parameter_count_matches_torchvision_minus_fc():
    import torchvision
    ref = torchvision.models.resnet18(weights=None)
    ref_count = sum(p.numel() for p in ref.parameters()) - sum(
        p.numel() for p in ref.fc.parameters())
    f = build_encoder("resnet18", small_images=False)
    assert sum(p.numel() for p in f.parameters()) == ref_count


def test_random_init_differs_between_builds():
    a, b = build_encoder("small_cnn"), build_encoder("small_cnn")
    assert not torch.equal(a.features[0].weight, b.features[0].weight)


def test_unknown_encoder_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown encoder 'vgg'.*resnet18"):
        build_encoder("vgg")
    assert set(ENCODERS) == {"small_cnn", "resnet18", "resnet34", "resnet50"}


def test_small_cnn_width():
    f = SmallCNN(width=8)
    assert f.feature_dim == 64 and f(torch.rand(3, 3, 16, 16)).shape == (3, 64)
    with pytest.raises(ValueError):
        SmallCNN(width=0)


@pytest.mark.parametrize("layers,n_linear,n_bn", [(1, 1, 0), (2, 2, 1), (3, 3, 2)])
def test_projection_head_layers(layers, n_linear, n_bn):
    g = ProjectionHead(64, 32, out_dim=16, num_layers=layers)
    mods = list(g.modules())
    assert sum(isinstance(m, nn.Linear) for m in mods) == n_linear
    assert sum(isinstance(m, nn.BatchNorm1d) for m in mods) == n_bn
    assert g(torch.rand(4, 64)).shape == (4, 16)


def test_projection_head_without_batch_norm():
    g = ProjectionHead(8, out_dim=4, num_layers=2, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in g.modules())
    assert g.net[0].bias is not None and g.net[0].out_features == 8
    with pytest.raises(ValueError, match="num_layers must be >= 0"):
        ProjectionHead(8, num_layers=-1)


def test_projection_head_of_zero_layers_is_no_projection():
    g = ProjectionHead(64, out_dim=128, num_layers=0)  # the paper's "None" head (Figure 8)
    h = torch.randn(4, 64)  # negative entries too
    assert torch.equal(g(h), h) and g.out_dim == 64 and not list(g.parameters())
    model = build_model(TrainConfig(encoder="small_cnn", encoder_width=8, head_layers=0))
    h, z = model(torch.rand(3, 3, 32, 32))
    assert torch.equal(h, z) and z.shape == (3, 64)
    linear = build_model(TrainConfig(encoder="small_cnn", encoder_width=8, head_layers=1))
    assert [type(m) for m in linear.head.net] == [nn.Linear]


def test_simclr_returns_h_and_z():
    model = SimCLR(build_encoder("small_cnn", width=8))
    h, z = model(torch.rand(4, 3, 32, 32))
    assert h.shape == (4, 64) and z.shape == (4, 128)
    # z is the head applied to h
    model.eval()
    h, z = model(torch.rand(4, 3, 32, 32))
    torch.testing.assert_close(z, model.head(h))
