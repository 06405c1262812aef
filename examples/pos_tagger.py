"""Part-of-speech tagging of Portuguese news (Porttinari-base, UPOS) with a CRF head.

Encoder: word embeddings (lower-cased, rare words -> <unk>, word dropout), a character CNN
(max-pooled), a case feature, and a one-layer BiLSTM. Three heads on the same encoder:

* ``crf``: :class:`torchenergy.models.LinearChainCRF`, trained by ``nll``, decoded by Viterbi;
* ``svm``: the same CRF scorer trained by :func:`structured_hinge_loss` (no partition function);
* ``softmax``: a per-token classifier trained by cross-entropy, argmax per token.

Data split by document id (:func:`torchenergy.data.load_porttinari`); the best epoch on dev is
evaluated on test. Run (2 CPU threads, a few minutes per head)::

    PYTHONPATH=. python examples/pos_tagger.py --head all --max-minutes 14 \
        --table bench/results/crf_accuracy.md
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchenergy.data import Sentence, Vocabulary, load_porttinari, pad_sequences
from torchenergy.models import LinearChainCRF, structured_hinge_loss

HEADS = ("crf", "svm", "softmax")


def case_id(word: str) -> int:
    if word.isdigit():
        return 1
    if word.isupper():
        return 2
    if word[:1].isupper():
        return 3
    if any(c.isdigit() for c in word):
        return 4
    if not any(c.isalnum() for c in word):
        return 5
    return 6


class Encoder(nn.Module):
    """Words + characters + case -> BiLSTM states (B, T, 2H)."""

    def __init__(
        self,
        n_words: int,
        n_chars: int,
        *,
        word_dim=100,
        char_dim=32,
        char_out=64,
        hidden=128,
        dropout=0.33,
    ):
        super().__init__()
        self.word = nn.Embedding(n_words, word_dim, padding_idx=0)
        self.char = nn.Embedding(n_chars, char_dim, padding_idx=0)
        self.conv = nn.Conv1d(char_dim, char_out, kernel_size=3, padding=1)
        self.case = nn.Embedding(8, 8, padding_idx=0)
        self.lstm = nn.LSTM(word_dim + char_out + 8, hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.out_dim = 2 * hidden

    def forward(self, words: Tensor, chars: Tensor, cases: Tensor, mask: Tensor) -> Tensor:
        b, t, c = chars.shape
        ch = self.char(chars.view(b * t, c)).transpose(1, 2)  # (BT, D, C)
        ch = self.conv(ch).masked_fill((chars.view(b * t, 1, c) == 0), -1e4).amax(dim=2)
        ch = torch.where(mask.view(b * t, 1), ch, 0.0).view(b, t, -1)
        x = self.drop(torch.cat([self.word(words), ch, self.case(cases)], dim=2))
        lengths = mask.sum(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths, batch_first=True, enforce_sorted=False
        )
        h, _ = self.lstm(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=t)
        return self.drop(h)


class Tagger(nn.Module):
    def __init__(self, head: str, n_words: int, n_chars: int, n_tags: int):
        super().__init__()
        self.head = head
        self.encoder = Encoder(n_words, n_chars)
        self.proj = nn.Linear(self.encoder.out_dim, n_tags)
        self.crf = LinearChainCRF(n_tags) if head in ("crf", "svm") else None

    def emissions(self, batch) -> Tensor:
        words, chars, cases, _, mask = batch
        return self.proj(self.encoder(words, chars, cases, mask))

    def loss(self, batch) -> Tensor:
        e = self.emissions(batch)
        tags, mask = batch[3], batch[4]
        if self.head == "crf":
            return self.crf.nll(e, tags, mask, reduction="mean")
        if self.head == "svm":
            return structured_hinge_loss(self.crf, e, tags, mask, reduction="mean").loss
        ce = F.cross_entropy(e[mask], tags[mask], reduction="sum")
        return ce / mask.shape[0]

    @torch.no_grad()
    def predict(self, batch) -> Tensor:
        e = self.emissions(batch)
        mask = batch[4]
        if self.crf is not None:
            return self.crf.decode(e, mask).tags
        return e.argmax(dim=2).masked_fill(~mask, -1)


def encode(
    sents: list[Sentence], wv: Vocabulary, cv: Vocabulary, tv: Vocabulary, max_chars: int = 20
):
    out = []
    for s in sents:
        chars = [cv.encode(list(w[:max_chars])) for w in s.words]
        out.append((wv.encode(s.words), chars, [case_id(w) for w in s.words], tv.encode(s.tags)))
    return out


def collate(items, *, word_dropout: float = 0.0, unk_id: int = 1, generator=None):
    words, mask = pad_sequences([it[0] for it in items])
    if word_dropout > 0:
        drop = torch.rand(words.shape, generator=generator) < word_dropout
        words = torch.where(drop & mask, unk_id, words)
    cases, _ = pad_sequences([it[2] for it in items])
    tags, _ = pad_sequences([it[3] for it in items], pad_value=-1)
    c = max(len(ch) for it in items for ch in it[1])
    chars = torch.zeros(len(items), words.shape[1], c, dtype=torch.long)
    for i, it in enumerate(items):
        for j, ch in enumerate(it[1]):
            chars[i, j, : len(ch)] = torch.as_tensor(ch)
    return words, chars, cases, tags, mask


def batches(data, size: int, *, shuffle: bool, rng: random.Random | None = None):
    idx = sorted(range(len(data)), key=lambda i: len(data[i][0]))  # bucket by length
    chunks = [idx[i : i + size] for i in range(0, len(idx), size)]
    if shuffle:
        rng.shuffle(chunks)
    return chunks


def accuracy(model: Tagger, data, size: int = 128) -> float:
    model.eval()
    right = total = 0
    for chunk in batches(data, size, shuffle=False):
        batch = collate([data[i] for i in chunk])
        pred = model.predict(batch)
        mask = batch[4]
        right += int((pred[mask] == batch[3][mask]).sum())
        total += int(mask.sum())
    return right / total


def train_head(
    head: str,
    splits,
    vocabs,
    *,
    epochs: int,
    max_minutes: float,
    batch_size: int,
    lr: float,
    seed: int,
    log=print,
) -> dict:
    torch.manual_seed(seed)  # parameter initialisation of this example script
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    wv, cv, tv = vocabs
    model = Tagger(head, len(wv), len(cv), len(tv))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    train, dev, test = splits
    best = (-1.0, None, 0)
    start, cpu0 = time.perf_counter(), time.process_time()
    slowest = last = 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        total = 0.0
        for chunk in batches(train, batch_size, shuffle=True, rng=rng):
            batch = collate(
                [train[i] for i in chunk], word_dropout=0.05, unk_id=wv.unk_id, generator=gen
            )
            loss = model.loss(batch)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            total += float(loss.detach())
        dev_acc = accuracy(model, dev)
        elapsed = (time.process_time() - cpu0) / 60  # CPU minutes: the budget is compute, not load
        wall = (time.perf_counter() - start) / 60
        log(
            f"[{head}] epoch {epoch} loss {total:.1f} dev {dev_acc:.4f} "
            f"({elapsed:.1f} CPU min, {wall:.1f} wall min)"
        )
        if dev_acc > best[0]:
            best = (dev_acc, copy.deepcopy(model.state_dict()), epoch)
        slowest = max(slowest, elapsed - last)
        last = elapsed
        if elapsed + 1.1 * slowest > max_minutes:  # the next epoch would not fit the budget
            break
    train_minutes = (time.perf_counter() - start) / 60
    cpu_minutes = (time.process_time() - cpu0) / 60
    model.load_state_dict(best[1])
    test_acc = accuracy(model, test)
    log(f"[{head}] best epoch {best[2]} dev {best[0]:.4f} test {test_acc:.4f}")
    return {
        "head": head,
        "seed": seed,
        "dev": best[0],
        "test": test_acc,
        "best_epoch": best[2],
        "epochs": epoch,
        "train_minutes": round(train_minutes, 2),
        "cpu_minutes": round(cpu_minutes, 2),
    }


def prepare(max_sentences: int | None = None):
    parts = load_porttinari()
    train, dev, test = parts["train"], parts["dev"], parts["test"]
    if max_sentences:
        train, dev, test = (
            train[:max_sentences],
            dev[: max_sentences // 4],
            test[: max_sentences // 4],
        )
    wv = Vocabulary((w for s in train for w in s.words), min_count=2, normalize=str.lower)
    cv = Vocabulary(c for s in train for w in s.words for c in w)
    tv = Vocabulary((t for s in train for t in s.tags), pad=None, unk=None)
    vocabs = (wv, cv, tv)
    splits = tuple(encode(x, wv, cv, tv) for x in (train, dev, test))
    return splits, vocabs, (len(train), len(dev), len(test))


def write_table(results: list[dict], path: Path, info: str) -> None:
    lines = [
        "# UPOS tagging accuracy on Porttinari-base (test split by document id)",
        "",
        info,
        "",
        "| head | seed | test acc | dev acc (best) | best epoch | epochs run | CPU min | wall min |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['head']} | {r.get('seed', '')} | {100 * r['test']:.2f}% | {100 * r['dev']:.2f}% | "
            f"{r['best_epoch']} | {r['epochs']} | {r.get('cpu_minutes', '')} | {r['train_minutes']} |"
        )
    heads = list(dict.fromkeys(r["head"] for r in results))
    if len(results) > len(heads):  # several seeds: mean test accuracy per head
        lines += ["", "| head | runs | mean test acc |", "|---|---|---|"]
        for h in heads:
            accs = [r["test"] for r in results if r["head"] == h]
            lines.append(f"| {h} | {len(accs)} | {100 * sum(accs) / len(accs):.2f}% |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--head", default="all", choices=(*HEADS, "all"))
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument(
        "--max-minutes",
        type=float,
        default=14.0,
        help="per head, process CPU time (= wall time on an idle machine with --threads 1)",
    )
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-sentences", type=int, default=None, help="subsample (smoke tests)")
    ap.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    ap.add_argument("--table", type=Path, default=None, help="write a Markdown table")
    ap.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        default=None,
        help="no training: write --table from JSON results of earlier runs",
    )
    args = ap.parse_args(argv)
    if args.from_json:
        results = [r for p in args.from_json for r in json.loads(p.read_text())]
        info = (
            f"Runs: {', '.join(p.name for p in args.from_json)}. CPU minutes are process CPU "
            "time (the wall time on an idle core with --threads 1); wall minutes were measured "
            "on a shared, overloaded machine."
        )
        write_table(results, args.table or Path("bench/results/crf_accuracy.md"), info)
        return results
    torch.set_num_threads(args.threads)
    splits, vocabs, sizes = prepare(args.max_sentences)
    print(
        f"sentences train/dev/test = {sizes}, words {len(vocabs[0])}, chars {len(vocabs[1])}, "
        f"tags {len(vocabs[2])}",
        flush=True,
    )
    heads = HEADS if args.head == "all" else (args.head,)
    results = []
    for head in heads:
        results.append(
            train_head(
                head,
                splits,
                vocabs,
                epochs=args.epochs,
                max_minutes=args.max_minutes,
                batch_size=args.batch_size,
                lr=args.lr,
                seed=args.seed,
                log=lambda m: print(m, flush=True),
            )
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    if args.table:
        info = (
            f"Sentences train/dev/test: {sizes}; {args.threads} threads; seed {args.seed}; "
            f"batch {args.batch_size}; Adam lr {args.lr}; at most {args.epochs} epochs or "
            f"{args.max_minutes} min per head; best dev epoch evaluated on test."
        )
        write_table(results, args.table, info)
    for r in results:
        print(f"{r['head']:8s} test {100 * r['test']:.2f}%  dev {100 * r['dev']:.2f}%", flush=True)
    assert all(math.isfinite(r["test"]) for r in results)
    return results


if __name__ == "__main__":
    main()
