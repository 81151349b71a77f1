"""Learned features instead of one-hot ones: phi(word) = onehot(word) @ W is an embedding lookup.

``nn.Embedding`` is the lecture's one-hot phi(word) times a matrix W, without the one-hot matrix
(asserted below). The corpus is SYNTHETIC (no text corpus ships offline): reviews of 3 clauses
"<noun> was [not|the] <adjective>", 12 positive and 12 negative synonyms, "not" flipping its clause,
labelled by the majority of the clauses. Fixed one-hot features, the bag of words (sum of one-hot
phi(word): ``EmbeddingBag(mode="sum")`` on a frozen identity) + logistic regression, cannot tell which
clause "not" negates. Learned phi (8 numbers per word, trained with a GRU that reads them in order)
can, and puts synonyms close together: the gain comes from composing learned word vectors in order.
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


def fit(model, X, y, epochs, rng):
    opt = cr.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)  # one-hot phi is frozen
    for _ in range(epochs):
        for b in np.array_split(rng.permutation(len(X)), len(X) // 50):
            loss = F.cross_entropy(model(X[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return lambda X, y: float(np.mean(np.argmax(model(X).numpy(), 1) == y))


def main(quick: bool = False) -> dict:
    cr.manual_seed(0)
    rng = np.random.default_rng(0)
    W, words = nn.Embedding(len(VOCAB), 8).weight, np.array([2, 8])  # "not", "good"
    assert np.allclose(np.eye(len(VOCAB))[words] @ W.numpy(), F.embedding(words, W).numpy())  # onehot @ W = W[i]
    (Xtr, ytr), (Xte, yte) = corpus(2000, rng), corpus(1000, rng)
    onehot = nn.Sequential(nn.EmbeddingBag.from_pretrained(cr.eye(len(VOCAB)), mode="sum"), nn.Linear(len(VOCAB), 2))
    learned, acc = Learned(), {}
    for name, model in (("one-hot bag of words + logistic", onehot), ("learned phi (Embedding) + GRU", learned)):
        score = fit(model, Xtr, ytr, 10 if quick else 30, rng)
        acc[name] = {"train": score(Xtr, ytr), "held-out": score(Xte, yte)}
        print(f"{name:32s} train {acc[name]['train']:6.1%}   held-out {acc[name]['held-out']:6.1%}")
    U = learned.phi.weight.numpy() / np.linalg.norm(learned.phi.weight.numpy(), axis=1, keepdims=True)
    cos = U @ U.T  # cosine similarity of every pair of learned word vectors
    same, across = cos[8:20, 8:20][~np.eye(12, dtype=bool)].mean(), cos[8:20, 20:].mean()
    print(f"learned phi: cosine of synonyms {same:.2f}, of antonyms {across:.2f} (one-hot: 0 for every pair)")
    return {"acc": acc, "cos_synonyms": float(same), "cos_antonyms": float(across)}


if __name__ == "__main__":
    main()
