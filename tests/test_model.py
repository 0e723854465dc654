import pytest
import torch

from fer.model import ModelConfig, count_parameters, create_model, model_names


@pytest.mark.parametrize("name", model_names())
def test_every_model_forward_and_backward(name):
    model = create_model(name)
    x = torch.randn(4, 1, 48, 48)
    logits = model(x)
    assert logits.shape == (4, 7)
    logits.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"


def test_paper_configuration_parameter_count():
    # 56,951 trainable; with BatchNorm's 1,472 running statistics this is Keras' 58,423 for mini_XCEPTION
    model = create_model("mini_xception")
    assert count_parameters(model) == 56_951
    buffers = sum(b.numel() for n, b in model.named_buffers() if "running" in n)
    assert count_parameters(model) + buffers == 58_423


def test_probabilities_sum_to_one():
    p = create_model().eval().predict_proba(torch.rand(3, 1, 48, 48))
    assert torch.allclose(p.sum(1), torch.ones(3))


def test_width_and_input_size_are_config():
    model = create_model(ModelConfig(widths=(8, 16), input_size=64))
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 7)
    assert count_parameters(model) < count_parameters(create_model())


def test_unknown_model_name_lists_the_known():
    with pytest.raises(ValueError, match="unknown model 'resnet'.*mini_xception"):
        create_model("resnet")


def test_channels_last_gives_the_same_answer():
    torch.manual_seed(0)
    model = create_model().eval()
    x = torch.randn(3, 1, 48, 48)
    a = model(x)
    b = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(a, b, atol=1e-4)


def test_temperature_divides_the_logits_in_inference_only_and_survives_export():
    torch.manual_seed(0)
    plain = create_model(ModelConfig(flip_tta=True)).eval()
    hot = create_model(ModelConfig(flip_tta=True, temperature=2.5)).eval()
    hot.load_state_dict(plain.state_dict())  # the temperature adds no weights
    x = torch.rand(4, 1, 48, 48)
    assert torch.allclose(hot(x), plain(x) / 2.5, atol=1e-5)
    assert torch.equal(hot(x).argmax(1), plain(x).argmax(1))
    program = torch.export.export(
        hot, (torch.rand(2, 1, 48, 48),), dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}}
    )
    assert torch.allclose(program.module()(x), plain(x) / 2.5, atol=1e-5)
    hot.train()
    plain.train()
    assert torch.allclose(hot(x), plain(x), atol=1e-5)  # training sees the raw logits


def test_a_model_from_the_blurred_copy_is_refused_by_name():
    with pytest.raises(ValueError, match="blurred copy of FER2013"):
        ModelConfig.from_dict({"input_blur": 2.75})
    assert ModelConfig.from_dict({"input_blur": 0.0}) == ModelConfig()  # runs that measured no blur still load


def test_input_pool_is_the_small_model_on_pooled_faces():
    torch.manual_seed(0)
    pooled = create_model(ModelConfig(input_pool=2)).eval()
    small = create_model(ModelConfig(input_size=24)).eval()
    small.load_state_dict(pooled.state_dict())  # pooling adds no weights
    x = torch.rand(3, 1, 48, 48)
    assert torch.allclose(pooled(x), small(torch.nn.functional.avg_pool2d(x, 2)), atol=1e-5)
    with pytest.raises(ValueError, match="input_pool 4 leaves 12 pixels"):
        create_model(ModelConfig(input_pool=4))


def test_flip_tta_averages_the_mirror_image_in_inference_and_survives_export():
    torch.manual_seed(0)
    plain = create_model(ModelConfig(input_pool=2)).eval()
    tta = create_model(ModelConfig(input_pool=2, flip_tta=True)).eval()
    tta.load_state_dict(plain.state_dict())
    x = torch.rand(3, 1, 48, 48)
    expected = (plain(x) + plain(x.flip(3))) / 2
    assert torch.allclose(tta(x), expected, atol=1e-5)
    assert (tta(x) - tta(x.flip(3))).abs().max() < 1e-6  # a face and its mirror get one answer,
    assert (plain(x) - plain(x.flip(3))).abs().max() > 1e-4  # which the plain model does not give
    program = torch.export.export(
        tta, (torch.rand(2, 1, 48, 48),), dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}}
    )
    assert torch.allclose(program.module()(x), expected, atol=1e-5)
    tta.train()
    assert tta(x).shape == (3, 7)  # no doubling while training


def test_shift_tta_averages_five_framings_and_their_mirrors():
    torch.manual_seed(0)
    plain = create_model(ModelConfig(input_pool=2)).eval()
    tta = create_model(ModelConfig(input_pool=2, flip_tta=True, tta_shift=2)).eval()
    tta.load_state_dict(plain.state_dict())
    x = torch.rand(3, 1, 48, 48)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")
    framings = [x, padded[..., 0:48, 2:50], padded[..., 4:52, 2:50], padded[..., 2:50, 0:48], padded[..., 2:50, 4:52]]
    views = framings + [v.flip(3) for v in framings]
    expected = torch.stack([plain(v) for v in views]).mean(0)
    assert torch.allclose(tta(x), expected, atol=1e-5)
    program = torch.export.export(
        tta, (torch.rand(2, 1, 48, 48),), dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}}
    )
    assert torch.allclose(program.module()(x), expected, atol=1e-5)
    assert torch.allclose(program.module()(x[:1]), expected[:1], atol=1e-5)  # a batch of one, as served


def test_for_inference_gives_the_same_answers_faster_graph():
    from fer.inference.weights import for_inference

    torch.manual_seed(0)
    model = create_model(ModelConfig(input_pool=2, flip_tta=True, temperature=1.7)).eval()
    exported = torch.export.export(
        model, (torch.rand(2, 1, 48, 48),), dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}}
    ).module()
    for source in (model, exported):
        fast = for_inference(source)
        assert isinstance(fast, torch.jit.ScriptModule)
        for n in (1, 3, 8):  # any batch, though traced at 2
            x = torch.rand(n, 1, 48, 48)
            assert torch.allclose(fast(x), model(x), atol=1e-4)
    wrapper = torch.nn.Sequential(model)  # not a classifier it knows: served as it is
    assert for_inference(wrapper) is wrapper


def test_stack_is_the_mean_of_the_networks_logits_in_one_graph(tmp_path):
    from fer.inference.weights import for_inference, load_weights, save_weights
    from fer.model import stack

    nets = []
    for seed in range(3):
        torch.manual_seed(seed)
        net = create_model(ModelConfig(input_pool=2, flip_tta=True, temperature=1.3)).train()
        net(torch.randn(32, 1, 48, 48))  # BatchNorm statistics of its own
        nets.append(net.eval())
    ensemble = stack(nets)
    assert ensemble.cfg.members == 3 and ensemble.cfg.temperature == 1.0
    assert count_parameters(ensemble) == 3 * count_parameters(nets[0])
    x = torch.rand(4, 1, 48, 48)
    expected = torch.stack([n(x) * n.cfg.temperature for n in nets]).mean(0)  # each network's own logits
    assert torch.allclose(ensemble(x), expected, atol=1e-5)
    assert (ensemble(x) - nets[0](x) * 1.3).abs().max() > 1e-3  # not one of them
    assert torch.allclose(for_inference(ensemble)(x[:1]), expected[:1], atol=1e-4)  # served: a batch of one
    program = torch.export.export(
        ensemble, (torch.rand(2, 1, 48, 48),), dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}}
    )
    assert torch.allclose(program.module()(x), expected, atol=1e-5)
    loaded, _ = load_weights(save_weights(ensemble, tmp_path / "e.pt"))
    assert loaded.cfg.members == 3 and torch.allclose(loaded(x), expected, atol=1e-5)

    other = create_model(ModelConfig(input_pool=2, widths=(16, 32, 64, 64))).eval()
    with pytest.raises(ValueError, match="network 1 differs from network 0"):
        stack([nets[0], other])


def test_an_ensemble_comes_apart_into_the_networks_it_was_stacked_from():
    from fer.model import stack, unstack

    torch.manual_seed(0)
    nets = [create_model(ModelConfig(stem_channels=4, widths=(8, 8, 8, 8))).eval() for _ in range(3)]
    for net in nets:  # BatchNorm statistics of their own, as trained networks have
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    x = torch.rand(4, 1, 48, 48)
    with torch.no_grad():
        assert all(torch.allclose(a(x), b(x), atol=1e-5) for a, b in zip(nets, unstack(stack(nets))))
        assert not torch.allclose(nets[0](x), nets[1](x))
