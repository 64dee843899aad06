"""The model registry: architectures, presets, configs."""
import dataclasses

import pytest
import torch

from hsickit import HsickitError
from hsickit.core.models import IRNET_PRESETS, create_model, list_models, model_config, model_from_config


def test_registry_lists_every_architecture():
    assert {"mlp", "irnet17", "irnet24", "irnet48", "plain17", "plain24", "plain48", "elemnet17", "conv1d"} <= set(list_models())


def _vector_models() -> list[str]:
    """Registered models that take plain vectors (an ``in_features`` option and no ``*_shape`` of the flattened
    images or signals they unflatten). The apps that register models are imported first, so the list does not
    depend on what the session happened to import before."""
    import dataclasses

    import hsickit.apps.ecg.channels  # noqa: F401  (registers xresnet1d)
    import hsickit.apps.plants.encoders  # noqa: F401  (registers leafcnn, contourcnn: shaped inputs)
    from hsickit.core.models import model_config_type

    def options(name):
        return {f.name for f in dataclasses.fields(model_config_type(name))}

    return [n for n in list_models() if n not in ("conv1d", "parallel")
            and "in_features" in options(n) and not any(o.endswith("_shape") for o in options(n))]


@pytest.mark.parametrize("name", _vector_models())
def test_vector_models_forward_and_expose_blocks(name):
    net = create_model(name, in_features=7, out_features=3).eval()
    x = torch.randn(5, 7)
    assert net(x).shape == (5, 3)
    h = x
    for block in net.blocks:
        h = block(h)
    assert torch.equal(net.features(x), h)
    assert torch.equal(net.head(h), net(x))


def test_irnet_depths_match_the_paper():
    for depth, hidden in IRNET_PRESETS.items():
        net = create_model(f"irnet{depth}", in_features=145, out_features=1)
        assert len(net.blocks) + 1 == depth
        assert [b.linear.out_features for b in net.blocks] == hidden


def test_irnet_block_adds_shortcut_after_activation():
    net = create_model("irnet17", in_features=1024, out_features=1).eval()
    block = net.blocks[0]  # 1024 -> 1024: identity shortcut
    x = torch.randn(4, 1024)
    assert isinstance(block.shortcut, torch.nn.Identity)
    torch.testing.assert_close(block(x), torch.relu(block.norm(block.linear(x))) + x)
    proj = net.blocks[4]  # 1024 -> 512: projection with bias, no BN, no activation
    assert isinstance(proj.shortcut, torch.nn.Linear) and proj.shortcut.bias is not None
    h = torch.randn(4, 1024)
    torch.testing.assert_close(proj(h), torch.relu(proj.norm(proj.linear(h))) + proj.shortcut(h))


def test_plain_twin_has_no_shortcuts_and_same_widths():
    plain = create_model("plain48", in_features=10, out_features=1)
    irnet = create_model("irnet48", in_features=10, out_features=1)
    assert all(b.shortcut is None for b in plain.blocks)
    assert [b.linear.out_features for b in plain.blocks] == [b.linear.out_features for b in irnet.blocks]


def test_reference_mlp_blocks():
    net = create_model("mlp", in_features=784, out_features=10)
    assert len(net.blocks) == 5
    block = net.blocks[0]
    assert block.linear.out_features == 1024
    assert isinstance(block.norm, torch.nn.BatchNorm1d) and not block.norm.affine


def test_elemnet_has_dropout_no_batchnorm():
    net = create_model("elemnet17", in_features=86, out_features=1)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules())
    assert any(isinstance(m, torch.nn.Dropout) for m in net.modules())


def test_conv1d_encoder():
    net = create_model("conv1d", in_channels=2, out_features=5, channels=(8, 16))
    x = torch.randn(3, 2, 257)
    assert net.features(x).shape == (3, 16)
    assert net(x).shape == (3, 5)


def test_config_round_trip():
    net = create_model("irnet17", in_features=12, out_features=2, dropout=0.1)
    cfg = dataclasses.asdict(net.config)
    again = model_from_config(cfg)
    assert again.config == net.config
    assert model_config("irnet17", in_features=12, out_features=2).hidden == tuple(IRNET_PRESETS[17])


def test_errors_name_the_fix():
    with pytest.raises(HsickitError, match="valid names: .*irnet17"):
        create_model("resnet9000", in_features=3, out_features=1)
    with pytest.raises(HsickitError, match="no option"):
        create_model("mlp", in_features=3, out_features=1, widht=3)
    with pytest.raises(HsickitError, match="needs"):
        create_model("mlp", out_features=1)


def test_orthogonal_init_gives_orthogonal_block_weights_and_survives_a_saved_config():
    net = create_model("mlp", in_features=8, out_features=3, hidden=(16, 16), init="orthogonal")
    for block in net.blocks[1:]:  # square: W Wᵀ = I
        w = block.linear.weight.detach()
        assert torch.allclose(w @ w.T, torch.eye(16), atol=1e-5) and not block.linear.bias.detach().any()
    plain = create_model("mlp", in_features=8, out_features=3, hidden=(16, 16)).blocks[1].linear.weight.detach()
    assert not torch.allclose(plain @ plain.T, torch.eye(16), atol=1e-2)
    assert model_from_config(dataclasses.asdict(net.config)).config.init == "orthogonal"
    old = {k: v for k, v in dataclasses.asdict(net.config).items() if k != "init"}  # saved before init existed
    assert model_from_config(old).config.init == "default"
    with pytest.raises(HsickitError, match="init='xavier'; use one of default, orthogonal"):
        create_model("irnet17", in_features=8, out_features=3, init="xavier")
