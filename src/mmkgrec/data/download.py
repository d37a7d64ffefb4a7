"""Download recipes for users with a network. Never used by the tests or CI, which read
``$MMKGREC_DATA``; the conversion to atomic files is tested on a local archive."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from ..errors import MMKGRecError
from .registry import data_root

GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
          "Sci-Fi", "Thriller", "War", "Western"]

RECIPES = {
    "ml-100k": {
        "url": "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        "md5": "0e33842e24a9c977be4e0107933c0723",
        "licence": "GroupLens research licence: research use, no redistribution",
    },
}


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(name: str, dest: str | Path | None = None, url: str | None = None,
             md5: str | None = None) -> Path:
    """Fetch dataset ``name`` into ``dest/<name>`` (default ``$MMKGREC_DATA``) as atomic files.

    The archive's MD5 is checked before anything is unpacked; the folder appears only when
    complete."""
    if name not in RECIPES:
        raise MMKGRecError(f"no download recipe for '{name}'; available: {sorted(RECIPES)}")
    recipe = RECIPES[name]
    dest = Path(dest) if dest else data_root()
    if dest is None:
        raise MMKGRecError("give --dest or set MMKGREC_DATA")
    target = dest / name
    if target.exists():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        archive = Path(tmp) / "archive.zip"
        try:
            urllib.request.urlretrieve(url or recipe["url"], archive)
        except OSError as e:  # URLError (offline, DNS, refused), HTTPError, a timeout
            reason = getattr(e, "reason", None) or e
            raise MMKGRecError(f"{name}: cannot download {url or recipe['url']} ({reason}); "
                               f"check the network, or unpack the files into {target} by "
                               "hand") from None
        got, want = md5sum(archive), md5 or recipe["md5"]
        if got != want:
            raise MMKGRecError(f"{name}: checksum mismatch (md5 {got}, expected {want}); the "
                               "download is corrupt or the file changed upstream")
        out = Path(tmp) / name
        convert_ml100k(archive, out)
        os.replace(out, target)
    return target


def convert_ml100k(archive: Path, out: Path) -> None:
    """GroupLens ``ml-100k.zip`` (u.data, u.item, u.user) -> RecBole atomic files."""
    out.mkdir(parents=True)
    with zipfile.ZipFile(archive) as z:
        def lines(member):
            return z.read(f"ml-100k/{member}").decode("latin-1").splitlines()

        rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
        rows += ["\t".join(l.split("\t")) for l in lines("u.data") if l.strip()]
        (out / "ml-100k.inter").write_text("\n".join(rows) + "\n", encoding="utf-8")
        rows = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
        for l in lines("u.item"):
            if not l.strip():
                continue
            f = l.split("|")
            m = re.match(r"^(.*?)\s*\((\d{4})\)\s*$", f[1])
            title, year = (m.group(1), m.group(2)) if m else (f[1], "")
            genres = [g for g, flag in zip(GENRES, f[5:24]) if flag == "1"]
            rows.append(f"{f[0]}\t{title}\t{year}\t{' '.join(genres)}")
        (out / "ml-100k.item").write_text("\n".join(rows) + "\n", encoding="utf-8")
        rows = ["user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token"]
        rows += ["\t".join(l.split("|")) for l in lines("u.user") if l.strip()]
        (out / "ml-100k.user").write_text("\n".join(rows) + "\n", encoding="utf-8")


__all__ = ["download", "convert_ml100k", "RECIPES", "md5sum"]
