import pytest
import torch

from fer.evaluation.calibration import calibrate, expected_calibration_error, fit_temperature, logits_of, reliability
from fer.model import ModelConfig, create_model
from tests.conftest import synthetic_faces


def overconfident(n: int = 3000, accuracy: float = 0.6, scale: float = 8.0, seed: int = 0):
    """Logits whose argmax is right `accuracy` of the time, scaled until the top probability is near 1."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 7, (n,), generator=g)
    right = torch.rand(n, generator=g) < accuracy
    pred = torch.where(right, y, (y + torch.randint(1, 7, (n,), generator=g)) % 7)
    logits = torch.randn(n, 7, generator=g) * 0.5
    logits[torch.arange(n), pred] += 1.0
    return logits * scale, y


@pytest.mark.parametrize(
    "proba, labels, expected",
    [
        ([[1.0, 0, 0, 0, 0, 0, 0]] * 4, [0, 0, 0, 1], 0.25),  # sure of all four, right on three
        ([[0.5, 0.5, 0, 0, 0, 0, 0]] * 4, [0, 0, 1, 1], 0.0),  # 50% sure, right half the time
        ([[0.9, 0.1, 0, 0, 0, 0, 0], [0.3, 0.7, 0, 0, 0, 0, 0]], [0, 0], 0.5 * 0.1 + 0.5 * 0.7),
    ],
)
def test_ece_by_hand(proba, labels, expected):
    assert expected_calibration_error(torch.tensor(proba), labels) == pytest.approx(expected)


def test_temperature_lowers_the_ece_of_an_overconfident_model_and_keeps_its_argmax():
    logits, y = overconfident()
    t = fit_temperature(logits[:2000], y[:2000])  # fitted on one part, judged on the other
    before = expected_calibration_error(logits[2000:].softmax(1), y[2000:])
    after = expected_calibration_error((logits[2000:] / t).softmax(1), y[2000:])
    assert t > 2 and before > 0.2 and after < before / 4
    assert torch.equal((logits / t).argmax(1), logits.argmax(1))
    under, y2 = overconfident(scale=0.3, seed=1)  # an under-confident one gets T < 1
    assert fit_temperature(under, y2) < 1


def test_reliability_bins_count_every_prediction():
    logits, y = overconfident(n=500)
    rows = reliability(logits.softmax(1), y)
    assert len(rows) == 15 and sum(r["n"] for r in rows) == 500
    assert rows[-1]["confidence"] > 0.9 and rows[-1]["accuracy"] < 0.8


def test_calibrate_puts_the_temperature_inside_the_served_graph():
    from fer.data.preprocess import normalize
    from fer.inference.weights import for_inference

    torch.manual_seed(0)
    model = create_model(ModelConfig(flip_tta=True))
    x, y = synthetic_faces(8, seed=4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(20):  # learns the synthetic classes and grows sure of them
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(normalize(x)), torch.as_tensor(y)).backward()
        opt.step()
    model.eval()
    # a third of the labels changed: the model stays as sure as before but is right less often (over-confident)
    noisy = y.copy()
    noisy[::3] = (noisy[::3] + 1) % 7
    raw = logits_of(model, x)
    report = calibrate(model, x[::2], noisy[::2], x[1::2], noisy[1::2])
    assert model.cfg.temperature == report["temperature"] > 1
    assert report["test_ece_after"] < report["test_ece_before"] / 2
    out = for_inference(model)(normalize(x))
    assert torch.allclose(out, raw / report["temperature"], atol=1e-3)
    assert torch.equal(out.argmax(1), raw.argmax(1))
    assert sum(r["n"] for r in report["test_reliability_after"]) == len(y[1::2])


def test_fit_temperature_refuses_an_empty_split():
    with pytest.raises(ValueError, match="empty split"):
        fit_temperature(torch.zeros(0, 7), [])
