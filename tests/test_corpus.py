"""Corpus sources, the document split, BPE and the token store."""

import h5py
import numpy as np
import pytest
from tokenizers import Tokenizer

from inductionheads import corpus
from inductionheads.config import digest


def write_docs(tmp_path, n=12):
    paths = []
    for i in range(n):
        p = tmp_path / f"doc{i:02d}.txt"
        p.write_text(f"def function_{i}(x):\n    return x * {i} + function_{i}(x - 1)\n" * 20)
        paths.append(p)
    return paths


def test_stdlib_source_is_present_and_excludes_site_packages():
    paths = corpus.stdlib_paths()
    assert len(paths) > 500
    assert all(p.suffix == ".py" and "site-packages" not in p.parts for p in paths)


def test_split_is_deterministic_disjoint_and_order_free():
    docs = [corpus.Document(f"d{i}", "x") for i in range(200)]
    train, held = corpus.split(docs, 0.1, seed=0)
    train2, held2 = corpus.split(list(reversed(docs)), 0.1, seed=0)
    assert {d.doc_id for d in held} == {d.doc_id for d in held2}
    assert not {d.doc_id for d in train} & {d.doc_id for d in held}
    assert len(train) + len(held) == 200
    assert 5 <= len(held) <= 40


def test_build_from_files_writes_bos_separated_streams(tmp_path):
    write_docs(tmp_path)
    settings = dict(
        source="files", paths=[str(tmp_path / "*.txt")], heldout_fraction=0.25, vocab_size=300, seed=0
    )
    tokens, tok_path = tmp_path / "tokens.h5", tmp_path / "tok.json"
    corpus.build(tokens, tok_path, settings)
    tok = Tokenizer.from_file(str(tok_path))
    with h5py.File(tokens, "r") as f:
        assert f.attrs["stage"] == "corpus" and f.attrs["config_hash"] == digest(settings)
        for split in ("train", "heldout"):
            ids, offsets = f[split][:], f[f"{split}_doc_offsets"][:]
            assert (ids[offsets] == 0).all() and (ids == 0).sum() == len(offsets)  # BOS starts each document
            first_doc = ids[1 : offsets[1] if len(offsets) > 1 else None]
            assert tok.decode(first_doc.tolist()).startswith("def function_")
        counts = f["train_token_counts"][:]
        assert counts.sum() == len(f["train"]) and len(counts) == f.attrs["vocab_size"]
    assert not (tmp_path / "tokens.h5.tmp").exists()


def test_missing_path_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        corpus.file_paths([str(tmp_path / "nothing_here" / "*.txt")])


def test_huggingface_source_reads_local_json(tmp_path):
    datasets = pytest.importorskip("datasets", reason="the optional 'hf' extra is not installed")
    del datasets
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(f'{{"content": "document number {i} " }}' for i in range(5)))
    docs = corpus.documents(
        dict(
            source="huggingface",
            heldout_fraction=0.2,
            vocab_size=300,
            hf_dataset=dict(path="json", data_files=str(data), text_field="content"),
        )
    )
    assert [d.text for d in docs][:2] == ["document number 0 ", "document number 1 "]


def test_random_tokens_exclude_bos_and_frequency_tails():
    from inductionheads.evalset import allowed_random_tokens, repeated_sequences

    counts = np.arange(100)[::-1].copy()  # token 0 (BOS) most frequent, token 99 least
    allowed = allowed_random_tokens(counts, 0.05)
    assert 0 not in allowed and allowed.min() == 6 and allowed.max() == 94
    seqs = repeated_sequences(allowed, 3, 10, 4, seed=0)
    assert seqs.shape == (3, 41) and (seqs[:, 0] == 0).all()
    assert (seqs[:, 1:11] == seqs[:, 11:21]).all()
    assert all(len(set(row[1:11])) == 10 for row in seqs)


def test_a_pretrained_tokenizer_gives_the_ids_of_the_one_trained_here(tmp_path):
    """corpus.tokenizer (the tokenizer of an imported checkpoint series) replaces BPE training; loaded
    back, the tokenizer trained on the same corpus reproduces every token id."""
    write_docs(tmp_path)
    settings = dict(
        source="files", paths=[str(tmp_path / "*.txt")], heldout_fraction=0.25, vocab_size=300, seed=0
    )
    corpus.build(tmp_path / "trained.h5", tmp_path / "tok.json", settings)
    pretrained = {**settings, "tokenizer": str(tmp_path / "tok.json"), "bos_token": corpus.BOS}
    corpus.build(tmp_path / "loaded.h5", tmp_path / "tok2.json", pretrained)
    with h5py.File(tmp_path / "trained.h5", "r") as a, h5py.File(tmp_path / "loaded.h5", "r") as b:
        for key in ("train", "heldout", "train_doc_offsets", "train_token_counts"):
            assert np.array_equal(a[key][:], b[key][:]), key
        assert a.attrs["bos_id"] == b.attrs["bos_id"] == 0
    with pytest.raises(ValueError, match="corpus.bos_token"):
        corpus.build(tmp_path / "x.h5", tmp_path / "x.json", {**pretrained, "bos_token": "<|nope|>"})


def test_a_corpus_file_reads_as_text_mode_would(tmp_path):
    from inductionheads.corpus_files import read_text_file

    path = tmp_path / "mixed.py"
    path.write_bytes(b"a = 1\r\nb = 2\rc = '\xe9'\n\r\n")  # CRLF, a lone CR, a latin-1 byte
    text, why = read_text_file(path)
    assert why == "" and text == path.read_text(encoding="utf-8", errors="replace")
    assert text == "a = 1\nb = 2\nc = '\ufffd'\n\n"
