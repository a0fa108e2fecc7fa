"""The MiniLM zoo entry and the murphy sentences: loading offline, splits, embeddings and the metrics."""

import numpy as np
import torch
import torch.nn.functional as F
from antq.model import datasets, text, zoo


def test_murphy_splits_are_fixed_and_disjoint():
    train, test, calib = (datasets.load_sentences("murphy", s) for s in ("train", "test", "calib"))
    assert len(test) > 150 and len(train) > 3 * len(test) - 10 and calib == train[:32]
    assert not set(train) & set(test)
    assert all(4 <= len(s.split()) <= 32 and "\n" not in s for s in train + test)
    assert test[1] == "A bird in hand is safer than one overhead."  # the file's order, no shuffling


def test_minilm_embeddings_are_mean_pooled_and_normalized():
    model = zoo.get("all-minilm-l6-v2")
    assert isinstance(model, text.SentenceEncoder) and len(model.bert.encoder.layer) == 6
    assert model.bert.config._attn_implementation == "eager"
    x = text.load_text("murphy", "test")
    x = {k: v[:6] for k, v in x.items()}
    assert x["input_ids"].shape == (6, text.SEQ_LEN) and x["input_ids"].dtype == np.int64
    e = text.embed(model, x)
    with torch.no_grad():
        h = model.bert(**{k: torch.from_numpy(v) for k, v in x.items()}).last_hidden_state
    m = torch.from_numpy(x["attention_mask"]).unsqueeze(-1).float()
    want = F.normalize((h * m).sum(1) / m.sum(1), dim=-1).numpy()
    np.testing.assert_allclose(e, want, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1, atol=1e-6)
    # related sentences are nearer than unrelated ones: the two "A budget is ..." laws are neighbours
    sents = datasets.load_sentences("murphy", "test")[:6]
    nn = text.neighbours(e)
    assert sents[2].startswith("A budget") and sents[3].startswith("A budget") and nn[2] == 3 and nn[3] == 2
    assert text.retention(e, e) == 1.0 and np.allclose(text.cosines(e, e), 1)
