#!/usr/bin/env python3
"""A synthetic language and a sentiment task over it, for the demo and the end-to-end tests.

Sentences describe a thing with two adjectives of the same polarity ("the film was lovely and
warm."). In the pretraining text a review is followed by its verdict, "It was great." or "It was
terrible.", so a pretrained model knows what a review deserves. The task asks in words the
language never uses ("... Verdict: great"), so zero-shot accuracy is near chance until the model
is fine-tuned to answer the new prompt as it answers the old one.

Writes into OUT_DIR:
  corpus.txt        pretraining text
  train.jsonl       {"sentence": ..., "label": 0|1, "verdict": "great"|"terrible"} task
                    examples (1 = positive; the verdict for generation tasks)
  dev.jsonl, test.jsonl
  client<k>.jsonl   with --clients=K: K non-IID training shards (client k mostly one label)
  sentiment.yaml    the task file (docs/tasks.md) over train.jsonl / dev.jsonl / test.jsonl
  tokenizer.json    a byte-level BPE tokenizer (Hugging Face's format, GPT-2's alphabet and
                    pre-tokenizer) whose merges make each word of the language one token
Same --seed, same bytes.
"""
import argparse
import json
import os
import random

POSITIVE = ["good", "great", "fine", "lovely", "superb", "bright", "warm", "sweet", "kind", "calm"]
NEGATIVE = ["bad", "awful", "poor", "dull", "grim", "weak", "cold", "sour", "harsh", "bleak"]
NOUNS = ["film", "movie", "show", "story", "book", "play", "song", "meal", "trip", "game"]
OPENERS = ["the", "this", "that", "our"]
VERBS = ["was", "felt", "seemed"]


def review(rng, label):
    words = POSITIVE if label == 1 else NEGATIVE
    a, b = rng.sample(words, 2)
    return f"{rng.choice(OPENERS)} {rng.choice(NOUNS)} {rng.choice(VERBS)} {a} and {b}."


def examples(rng, n, labels=None):
    out = []
    for _ in range(n):
        label = rng.randint(0, 1) if labels is None else labels(rng)
        out.append({"sentence": review(rng, label), "label": label,
                    "verdict": "great" if label else "terrible"})
    return out


def bytes_to_unicode():
    """GPT-2's byte-to-character table: printable bytes stand for themselves."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def tokenizer_json(words):
    """Byte-level BPE: the 256 byte symbols, then merges that build every word (with and without
    its leading space) one character at a time. The spaced words' merges rank first, so a word
    after a space always becomes its one token."""
    table = bytes_to_unicode()
    vocab = {table[b]: b for b in range(256)}
    merges = []

    def build(token):
        current = token[0]
        for ch in token[1:]:
            merged = current + ch
            if merged not in vocab:
                vocab[merged] = len(vocab)
                merges.append(f"{current} {ch}")
            current = merged

    space = table[ord(" ")]
    for word in words:
        build(space + word)
    for word in words:
        build(word)
    eos = len(vocab)
    return {
        "version": "1.0",
        "added_tokens": [{"id": eos, "content": "<|endoftext|>", "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": False,
                          "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False,
                  "vocab": vocab, "merges": merges},
    }


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--corpus_lines", type=int, default=6000)
    parser.add_argument("--train", type=int, default=512)
    parser.add_argument("--dev", type=int, default=128)
    parser.add_argument("--test", type=int, default=256)
    parser.add_argument("--clients", type=int, default=0)
    parser.add_argument("--client_examples", type=int, default=256)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "corpus.txt"), "w") as f:
        for _ in range(args.corpus_lines):
            label = rng.randint(0, 1)
            f.write(f"{review(rng, label)} It was {'great' if label else 'terrible'}.\n")
    write_jsonl(os.path.join(args.out_dir, "train.jsonl"), examples(rng, args.train))
    write_jsonl(os.path.join(args.out_dir, "dev.jsonl"), examples(rng, args.dev))
    write_jsonl(os.path.join(args.out_dir, "test.jsonl"), examples(rng, args.test))
    for k in range(args.clients):
        # Client k sees its own label 90 % of the time: label distributions differ by client.
        own = k % 2
        rows = examples(rng, args.client_examples,
                        lambda r, own=own: own if r.random() < 0.9 else 1 - own)
        write_jsonl(os.path.join(args.out_dir, f"client{k}.jsonl"), rows)
    words = sorted(set(POSITIVE + NEGATIVE + NOUNS + OPENERS + VERBS +
                       ["and", "It", "was", "great", "terrible", "Verdict"]))
    with open(os.path.join(args.out_dir, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(words), f, indent=1)
    with open(os.path.join(args.out_dir, "sentiment.yaml"), "w") as f:
        f.write(
            "# A sentiment task over the synthetic reviews (docs/tasks.md).\n"
            "kind: TASK_KIND_CLASSIFICATION\n"
            f"train_path: {os.path.join(os.path.abspath(args.out_dir), 'train.jsonl')}\n"
            f"dev_path: {os.path.join(os.path.abspath(args.out_dir), 'dev.jsonl')}\n"
            f"test_path: {os.path.join(os.path.abspath(args.out_dir), 'test.jsonl')}\n"
            "template: '{sentence} Verdict:'\n"
            "candidate_template: ' {candidate}.'\n"
            "labels:\n"
            "  - {value: '0', text: terrible}\n"
            "  - {value: '1', text: great}\n")


if __name__ == "__main__":
    main()
