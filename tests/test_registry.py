import pytest

import ppresvar
from ppresvar.models import UnknownModelError, model_paper

SEED_NAMES = ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet18", "resnet34",
              "resnet50", "resnet101", "resnet152", "resnet18_nam", "resnet50_nam",
              "resnet18_dyrelu_a", "resnet18_dyrelu_b", "resnet18_dyrelu_c"] + [
              "resnetrs%d" % d for d in (50, 101, 152, 200, 270, 350, 420)]


def test_every_seed_family_is_registered_with_a_paper():
    names = ppresvar.list_models()
    assert names == sorted(names)
    for n in SEED_NAMES:
        assert n in names
        assert model_paper(n)


def test_list_models_pattern():
    assert ppresvar.list_models("resnetrs*") == ["resnetrs%d" % d for d in (101, 152, 200, 270, 350, 420, 50)]


def test_unknown_name_lists_the_closest():
    with pytest.raises(UnknownModelError) as e:
        ppresvar.create_model("resnet2O")
    msg = str(e.value)
    assert "resnet2O" in msg and "resnet20" in msg


def test_unknown_name_far_from_everything_points_to_list_models():
    with pytest.raises(UnknownModelError, match="list_models"):
        ppresvar.create_model("vgg16_bn_imagenet")


@pytest.mark.parametrize("name", [["resnet20"], None, 20])
def test_a_name_that_is_not_a_string_is_an_unknown_model(name):
    with pytest.raises(UnknownModelError, match="unknown model"):
        ppresvar.create_model(name)


def test_num_classes_default_is_the_factorys():
    assert ppresvar.create_model("resnet20").fc.weight.shape == [64, 10]
    assert ppresvar.create_model("resnet20", num_classes=100).fc.weight.shape == [64, 100]


def test_bad_options_are_errors():
    with pytest.raises(ValueError, match="6n\\+2"):
        ppresvar.models.cifar_resnet(21)
    with pytest.raises(ValueError, match="shortcut"):
        ppresvar.create_model("resnet20", shortcut="C")
    with pytest.raises(ValueError, match="stem"):
        ppresvar.create_model("resnet18", stem="vit")
    with pytest.raises(ValueError, match="depth"):
        ppresvar.models.resnet_rs(77)


def test_create_model_loads_pretrained_weights(tmp_path):
    """``pretrained=PATH`` (a kept model.safetensors) gives the saved weights;
    the weights of another model are one clear error."""
    import numpy as np

    from ppresvar import safetensors
    from ppresvar.errors import CheckpointError

    trained = ppresvar.create_model("resnet18_dyrelu_a", widths=[8, 16, 16, 32])
    path = str(tmp_path / "model.safetensors")
    safetensors.save({k: v.numpy() for k, v in trained.state_dict().items()}, path)
    loaded = ppresvar.create_model("resnet18_dyrelu_a", widths=[8, 16, 16, 32], pretrained=path)
    for k, v in trained.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k].numpy(), v.numpy(), err_msg=k)
    fresh = ppresvar.create_model("resnet18_dyrelu_a", widths=[8, 16, 16, 32])
    assert any(np.abs(fresh.state_dict()[k].numpy() - v.numpy()).max() > 0
               for k, v in trained.state_dict().items() if k.endswith("weight"))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        ppresvar.create_model("resnet18_dyrelu_a", widths=[16, 32, 64, 128], pretrained=path)


def test_float16_weights_load_into_a_float32_model_as_their_values(tmp_path):
    """results/ keeps some weights in float16: loaded, a model holds those
    values as float32 and computes what a model given the same values in
    float32 computes."""
    import numpy as np
    import paddle

    from ppresvar import safetensors

    trained = ppresvar.create_model("resnet20")
    half = {k: v.numpy().astype(np.float16) for k, v in trained.state_dict().items()}
    path = str(tmp_path / "model.safetensors")
    safetensors.save(half, path)
    loaded = ppresvar.create_model("resnet20", pretrained=path)
    for k, v in half.items():
        got = loaded.state_dict()[k]
        assert str(got.dtype).endswith("float32"), k
        np.testing.assert_array_equal(got.numpy(), v.astype(np.float32), err_msg=k)
    reference = ppresvar.create_model("resnet20")
    reference.set_state_dict({k: paddle.to_tensor(v.astype(np.float32)) for k, v in half.items()})
    loaded.eval()
    reference.eval()
    x = paddle.to_tensor(np.random.RandomState(0).randn(2, 3, 32, 32).astype(np.float32))
    np.testing.assert_array_equal(loaded(x).numpy(), reference(x).numpy())
