"""The real student and teacher load from their PyPI packages and train a few steps (offline)."""

import numpy as np
import pytest

from modeling.infer import predict_logits
from modeling.models import load_classifier
from modeling.train import TrainConfig, TrainData, train

pytestmark = pytest.mark.slow

TEXTS = [("claim: the moon is made of cheese", "tweet: obviously false, it is rock"),
         ("claim: the moon is made of cheese", "tweet: I read it somewhere, could be true"),
         ("claim: water is wet", "tweet: what does wet even mean?"),
         ("claim: water is wet", "tweet: yes, of course it is")] * 2
LABELS = ["Refuting", "Supporting", "Querying"]
YS = np.array([0, 1, 2, 1] * 2)


@pytest.mark.parametrize(("name", "n_params"), [("minilm-l6", 22_714_371), ("mpnet-base", 109_488_771)])
def test_real_model_loads_from_its_package_and_trains(name, n_params, tmp_path):
    m = load_classifier(name, LABELS, cache_dir=tmp_path)
    assert m.n_params == n_params
    before = predict_logits(m.model, m.tokenizer, TEXTS[:2], progress=False, precision="fp32")
    result = train(m.model, m.tokenizer, TrainData(TEXTS, YS, LABELS),
                   TrainConfig(epochs=1, batch_size=4, max_length=32, progress=False))
    after = predict_logits(m.model, m.tokenizer, TEXTS[:2], progress=False, precision="fp32")
    assert result.steps == 2 and np.isfinite(after).all()
    assert not np.allclose(before, after)
