"""Corpus sources, the train/held-out split by document, byte-level BPE, and the token store.

Token ids go to one HDF5 file: a flat `train` and `heldout` stream, each document preceded by BOS,
with document offsets and the training-split token frequencies (used to draw random tokens).
"""

from __future__ import annotations

import hashlib
import logging
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import h5io
from .config import digest
from .corpus_files import BINARY, file_paths, read_text_file

BOS = "<|bos|>"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Document:
    doc_id: str  # stable identity (path or dataset index): decides the split
    text: str


def stdlib_paths() -> list[Path]:
    """The `.py` sources of the running interpreter's standard library, site-packages excluded."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts and p.is_file())


def _read_files(paths: list[Path], root: Path | None, skipped: list[str]) -> Iterator[Document]:
    """The files as documents; those left out are appended to `skipped` with why."""
    for path in paths:
        text, why = read_text_file(path)
        doc_id = str(path.relative_to(root)) if root else str(path)
        if why:
            skipped.append(f"{doc_id}: {why}")
            continue
        yield Document(doc_id, text)


def huggingface_documents(hf: dict[str, Any]) -> Iterator[Document]:
    """Documents from `datasets.load_dataset` (a hub name online, or a local text/json loader)."""
    try:
        import datasets
    except ImportError as exc:
        raise ImportError(
            "corpus.source 'huggingface' needs the extra: pip install 'inductionheads[hf]'"
        ) from exc
    ds = datasets.load_dataset(
        hf["path"], hf.get("name"), split=hf.get("split", "train"), data_files=hf.get("data_files")
    )
    field = hf.get("text_field", "text")
    if field not in ds.column_names:
        raise KeyError(f"dataset {hf['path']} has no column '{field}' (has {ds.column_names})")
    for i, row in enumerate(ds):
        yield Document(f"{hf['path']}:{i}", row[field])


def documents(corpus: dict[str, Any], skipped: list[str] | None = None) -> list[Document]:
    """The corpus section's documents in a deterministic order, capped as configured; files left out
    (empty, binary) are appended to `skipped`."""
    source = corpus["source"]
    skipped = [] if skipped is None else skipped
    if source == "stdlib":
        root = Path(sysconfig.get_paths()["stdlib"])
        docs = list(_read_files(stdlib_paths(), root, skipped))
    elif source == "files":
        docs = list(_read_files(file_paths(corpus["paths"]), None, skipped))
    elif source == "huggingface":
        docs = list(huggingface_documents(corpus["hf_dataset"]))
    else:
        raise ValueError(f"unknown corpus source '{source}'")
    docs = [d for d in docs if d.text.strip()]
    if corpus.get("max_documents"):
        docs = docs[: corpus["max_documents"]]
    if corpus.get("max_document_bytes"):
        cap = corpus["max_document_bytes"]
        docs = [Document(d.doc_id, d.text.encode()[:cap].decode("utf-8", "ignore")) for d in docs]
    if len(docs) < 2:
        raise ValueError(f"corpus source '{source}' yields {len(docs)} document(s); need at least 2 to split")
    return docs


def is_heldout(doc_id: str, fraction: float, seed: int) -> bool:
    """Deterministic split by a hash of the document's identity, independent of corpus order."""
    h = hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < fraction


def split(docs: list[Document], fraction: float, seed: int) -> tuple[list[Document], list[Document]]:
    train = [d for d in docs if not is_heldout(d.doc_id, fraction, seed)]
    heldout = [d for d in docs if is_heldout(d.doc_id, fraction, seed)]
    if not heldout or not train:
        # tiny corpora: keep both splits non-empty, deterministically
        ranked = sorted(docs, key=lambda d: hashlib.sha256(f"{seed}:{d.doc_id}".encode()).digest())
        heldout, train = ranked[:1], ranked[1:]
    return train, heldout


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE (the GPT-2 scheme) with BOS as id 0."""
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(
        texts, vocab_size=vocab_size, min_frequency=2, special_tokens=[BOS], show_progress=False
    )
    if tok.token_to_id(BOS) != 0:
        raise RuntimeError("BPE training did not give BOS the id 0")
    return tok


def load_tokenizer(path: str | Path, bos_token: str):
    """A pretrained `tokenizers` JSON (e.g. the tokenizer of an imported checkpoint series) and the id
    of its document-separator token."""
    from tokenizers import Tokenizer

    if not Path(path).is_file():
        raise FileNotFoundError(f"config key 'corpus.tokenizer': no tokenizer file {path}")
    tok = Tokenizer.from_file(str(path))
    bos_id = tok.token_to_id(bos_token)
    if bos_id is None:
        raise ValueError(
            f"config key 'corpus.bos_token': tokenizer {path} has no token {bos_token!r} "
            "to separate documents"
        )
    return tok, bos_id


def encode_stream(tok, docs: list[Document], bos_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of the documents, each preceded by BOS (`bos_id`), and each document's start offset."""
    encoded = tok.encode_batch([d.text for d in docs])
    lengths = np.array([len(e.ids) + 1 for e in encoded], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    stream = np.full(int(lengths.sum()), bos_id, dtype=np.int32)
    for off, e in zip(offsets, encoded, strict=True):
        stream[off + 1 : off + 1 + len(e.ids)] = e.ids
    return stream, offsets


def build(tokens: str | Path, tokenizer: str | Path, settings: dict[str, Any]) -> None:
    """Read the corpus (`settings`: the config's corpus section), split it, train BPE on the training
    split (or load `corpus.tokenizer`), write the token store and the tokenizer."""
    corpus = settings
    skipped: list[str] = []
    docs = documents(corpus, skipped)
    if skipped:  # an empty file is common (an __init__.py); a binary one is worth a warning
        binary = [s for s in skipped if s.endswith(BINARY)]
        log.log(
            logging.WARNING if binary else logging.INFO,
            "corpus: left out %d file(s), listed in the attribute skipped_files: %s",
            len(skipped),
            "; ".join((binary + [s for s in skipped if s not in binary])[:20])
            + ("; ..." if len(skipped) > 20 else ""),
        )
    seed = corpus.get("seed", 0)
    train, heldout = split(docs, corpus["heldout_fraction"], seed)
    log.info(
        "corpus: %d documents (%d train, %d held out), %.1f MB",
        len(docs),
        len(train),
        len(heldout),
        sum(len(d.text) for d in docs) / 1e6,
    )
    if corpus.get("tokenizer"):
        tok, bos_id = load_tokenizer(corpus["tokenizer"], corpus.get("bos_token", BOS))
        tokenizer_json = tok.to_str(pretty=True)
    else:
        tok, bos_id = train_tokenizer([d.text for d in train], corpus["vocab_size"]), 0
        tokenizer_json = tok._tokenizer.to_str(pretty=True)
    vocab = tok.get_vocab_size()
    train_ids, train_offsets = encode_stream(tok, train, bos_id)
    heldout_ids, heldout_offsets = encode_stream(tok, heldout, bos_id)
    log.info("tokens: %d train, %d held out, vocab %d", len(train_ids), len(heldout_ids), vocab)
    dtype = np.uint16 if vocab <= 2**16 else np.int32
    counts = np.bincount(train_ids, minlength=vocab)
    tok_digest = hashlib.sha256(tokenizer_json.encode()).hexdigest()[:16]
    with h5io.atomic_writer(
        tokens,
        "corpus",
        digest(settings),
        vocab_size=vocab,
        bos_id=bos_id,
        source=corpus["source"],
        python=sys.version.split()[0],
        tokenizer_sha256=tok_digest,
    ) as f:
        h5io.write(f, "train", train_ids.astype(dtype), ("token",), compress=True)
        h5io.write(f, "heldout", heldout_ids.astype(dtype), ("token",), compress=True)
        h5io.write(f, "train_doc_offsets", train_offsets, ("document",))
        h5io.write(f, "heldout_doc_offsets", heldout_offsets, ("document",))
        h5io.write(f, "train_token_counts", counts, ("vocab",), units="count")
        f.attrs["heldout_doc_ids"] = "\n".join(d.doc_id for d in heldout)
        f.attrs["skipped_files"] = "\n".join(skipped)  # files left out, each with why
    with h5io.atomic_path(tokenizer) as tmp:
        tmp.write_text(tokenizer_json)


def read_tokens(path: str | Path, split_name: str) -> np.ndarray:
    with h5io.open_input(path, "corpus") as f:
        return h5io.read(f, split_name).astype(np.int64)
