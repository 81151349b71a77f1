"""Learned features instead of one-hot ones: phi(word) = onehot(word) @ W is an embedding lookup.

``nn.Embedding`` is one-hot phi times W without the one-hot matrix (asserted below, with its gradient onehot^T G).
A SYNTHETIC corpus (none ships offline): reviews of 3 clauses "<noun> was [not|the] <adjective>", 12 positive and
12 negative synonyms, "not" flipping its clause, labelled by the majority. A one-hot bag of words (frozen identity
``EmbeddingBag``) + logistic regression cannot tell which clause "not" negates; a GRU reading learned phi (8 numbers
a word) can, and synonyms end up close together.
"""

import numpy as np

import chainrule as cr
import chainrule.nn.functional as F
from chainrule import nn

POS = "good great fine nice superb lovely brilliant charming decent solid superior fun".split()
NEG = "bad awful poor dull weak boring clumsy lame mediocre tedious dreadful messy".split()
VOCAB = ["the", "was", "not", "plot", "acting", "music", "ending", "cast"] + POS + NEG


def corpus(n, rng):
    pos, neg, noun = rng.random((n, 3)) < 0.5, rng.random((n, 3)) < 0.4, rng.integers(3, 8, (n, 3))
    adj = np.where(pos, 8 + rng.integers(0, 12, (n, 3)), 20 + rng.integers(0, 12, (n, 3)))
    X = np.stack([noun, np.ones_like(noun), np.where(neg, 2, 0), adj], axis=2).reshape(n, 12)
    return X, ((np.where(pos, 1, -1) * np.where(neg, -1, 1)).sum(1) > 0).astype(np.int64)


class Learned(nn.Module):
    def __init__(self, d=8, h=16):
        self.phi, self.rnn, self.out = nn.Embedding(len(VOCAB), d), nn.GRU(d, h, batch_first=True), nn.Linear(h, 2)

    def forward(self, X):
        return self.out(self.rnn(self.phi(X))[0][:, -1])


def main(quick: bool = False) -> dict:
    cr.manual_seed(0)
    rng = np.random.default_rng(0)
    W, words = nn.Embedding(len(VOCAB), 8).weight, np.array([2, 8, 2])  # "not", "good", "not"
    onehot, G = np.eye(len(VOCAB), dtype=np.float32)[words], np.random.default_rng(1).standard_normal((3, 8), np.float32)
    (F.embedding(words, W) * cr.tensor(G)).sum().backward()                      # L = sum(phi * G): dL/dphi = G
    assert np.allclose(onehot @ W.numpy(), F.embedding(words, W).numpy())        # phi = onehot @ W = W[word]
    assert np.allclose(W.grad.numpy(), onehot.T @ G, atol=1e-6)                  # dL/dW = onehot^T G ("not" twice)
    data = {"train": corpus(2000, rng), "held-out": corpus(1000, rng)}
    bag = nn.Sequential(nn.EmbeddingBag.from_pretrained(cr.eye(len(VOCAB)), mode="sum"), nn.Linear(len(VOCAB), 2))
    learned, acc = Learned(), {}
    for name, model in (("one-hot bag of words + logistic", bag), ("learned phi (Embedding) + GRU", learned)):
        opt = cr.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)  # the one-hot phi is frozen
        cr.fit(model, "cross_entropy", opt, data["train"], epochs=10 if quick else 30, batch_size=50, seed=0, progress=False)
        acc[name] = {k: float(np.mean(model(X).numpy().argmax(1) == y)) for k, (X, y) in data.items()}
        print(f"{name:32s} train {acc[name]['train']:6.1%}   held-out {acc[name]['held-out']:6.1%}")
    U = learned.phi.weight.numpy() / np.linalg.norm(learned.phi.weight.numpy(), axis=1, keepdims=True)
    cos = U @ U.T  # cosine similarity of every pair of learned word vectors: synonyms (8:20), antonyms (8:20 x 20:)
    same, across = cos[8:20, 8:20][~np.eye(12, dtype=bool)].mean(), cos[8:20, 20:].mean()
    print(f"learned phi: cosine of synonyms {same:.2f}, of antonyms {across:.2f} (one-hot: 0 for every pair)")
    return {"acc": acc, "cos_synonyms": float(same), "cos_antonyms": float(across)}


if __name__ == "__main__":
    main()
