"""A split written as RecBole benchmark files (``mmkgrec data export-recbole``), in the interaction
form or as the sequential samples RecBole's sequential models read, so that both libraries train
and evaluate on exactly the same parts.

It sits above :mod:`.split` and :mod:`.sequences`, the two things it writes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import MMKGRecError
from .sequences import PARTS, build_sequences
from .split import Split


def export_recbole(split: Split, folder: str | Path, name: str | None = None,
                   sequential: bool = False, max_len: int = 50) -> Path:
    """Write ``split`` as ``NAME.train.inter``, ``NAME.valid.inter``, ``NAME.test.inter`` (RecBole's
    ``benchmark_filename``) with raw ids, plus ``NAME.kg`` / ``NAME.link`` when the dataset has
    a KG. Files are written to a temporary name and renamed, so no half-written file remains.

    With ``sequential`` each row is one of our next-item samples
    (:func:`mmkgrec.data.sequences.build_sequences`, ``UserSequences.targets``), the
    pre-augmented form RecBole's ``SequentialDataset`` reads from benchmark files: header
    ``user_id:token item_id_list:token_seq item_id:token``, the history being the (at most
    ``max_len``) items just before the target in time order, space-separated. Train rows are
    every training position ``t >= 1`` (history: earlier training items); valid / test rows
    are every validation / test interaction (history: everything of the user before it)."""
    name = name or split.dataset.name
    out = Path(folder) / name
    out.mkdir(parents=True, exist_ok=True)
    ds = split.dataset
    if sequential:
        for part, lines in sequential_rows(split, max_len).items():
            _write_atomic(out / f"{name}.{part}.inter", "\n".join(lines) + "\n")
    else:
        for part in ("train", "valid", "test"):
            inter = split.part(part)
            has_r, has_t = inter.rating is not None, inter.timestamp is not None
            header = ["user_id:token", "item_id:token"] + (["rating:float"] if has_r else []) + (
                ["timestamp:float"] if has_t else [])
            cols = [ds.user_ids[inter.user], ds.item_ids[inter.item]]
            if has_r:
                cols.append([_num(x) for x in inter.rating])
            if has_t:
                cols.append([_num(x) for x in inter.timestamp])
            lines = ["\t".join(header)] + ["\t".join(map(str, row)) for row in zip(*cols)]
            _write_atomic(out / f"{name}.{part}.inter", "\n".join(lines) + "\n")
    if ds.kg is not None:
        kg_lines = ["head_id:token\trelation_id:token\ttail_id:token"] + [
            "\t".join(t) for t in ds.kg]
        _write_atomic(out / f"{name}.kg", "\n".join(kg_lines) + "\n")
        link = ["item_id:token\tentity_id:token"] + [
            f"{i}\t{e}" for i, e in zip(ds.item_ids, ds.item_entity) if e is not None]
        _write_atomic(out / f"{name}.link", "\n".join(link) + "\n")
    return out


SEQUENTIAL_HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token"


def sequential_rows(split: Split, max_len: int = 50) -> dict:
    """Per part, the lines (header first) of the sequential RecBole export: one row per next-item
    sample of :mod:`mmkgrec.data.sequences` (user, history, target; tab-separated raw ids), the
    history being the last ``max_len`` items before the target, in time order, space-separated."""
    if int(max_len) < 1:
        raise MMKGRecError(f"max_len must be >= 1, got {max_len}")
    seqs = build_sequences(split)
    ds = split.dataset
    tokens = ds.item_ids[seqs.items]
    if any(any(c.isspace() for c in str(t)) for t in ds.item_ids):
        raise MMKGRecError(f"dataset '{ds.name}' has item ids with whitespace, which RecBole's "
                           "token_seq field cannot hold")
    out = {}
    for part in PARTS:
        pos = seqs.targets(part)
        users = seqs.user_of(pos)
        start = np.maximum(seqs.indptr[users], pos - int(max_len))
        lines = [SEQUENTIAL_HEADER]
        lines += [f"{u}\t{' '.join(tokens[s:p])}\t{tokens[p]}"
                  for u, s, p in zip(ds.user_ids[users], start.tolist(), pos.tolist())]
        out[part] = lines
    return out


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
