"""Item content of a dataset: one text per item and one image reference per item.

Text is built from columns of the dataset's item table (``Dataset.item_features``): by default
every ``token``/``token_seq`` column except id columns, in the table's column order. Prose-like
``token_seq`` columns (title, name, description, ...) are joined with spaces, list-like ones
(genres, classes, tags, categories, ...) with ``", "``, and the fields with ``". "``. For ML-100K
this gives ``"Toy Story. 1995. Animation, Children's, Comedy"``. An item with none of the fields
has no text (``None``); that is logged with its item id and masked downstream. Columns a task
withholds (the target column of a classification run, ``withheld``) never enter the text: they
leave the default fields, and naming one in ``text_fields`` is an error; the text then differs,
and so does its fingerprint in the feature store.

Image references come from a folder of ``<raw item id>.<jpg|jpeg|png|webp|bmp|gif>`` files
(``image_dir``) or from an item column of paths or URLs (``image_column``); relative paths are
resolved against the dataset's folder. :func:`load_image` decodes one reference to an RGB image
and raises on a corrupt, truncated, non-image or unreadable input; the store catches that per
item, logs it with the item id and records the item as missing.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import re
from pathlib import Path

import numpy as np

from ..data.readers import confined_path
from ..errors import ConfigError, MMKGRecError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
_PROSE = re.compile(r"title|name|desc|text|review|summary|plot|overview|synopsis|content|"
                    r"abstract|comment|caption", re.I)
_MISSING_TOKENS = ("", "nan", "none", "null")


def dataset_folder(dataset) -> Path | None:
    """The folder the dataset was read from (``Dataset.source``), or None (generated data)."""
    src = getattr(dataset, "source", "") or ""
    p = Path(src)
    return p if src and p.is_dir() else None


# --------------------------------------------------------------------------- text

def default_text_fields(dataset) -> list[str]:
    """Every token / token_seq column of the item table except id columns, in table order."""
    return [c for c, t in dataset.item_feature_types.items()
            if t in ("token", "token_seq") and c != "item_id" and not c.endswith("_id")]


def resolve_text_fields(dataset, fields, withheld=()) -> list[str]:
    """``fields`` (None, a list, or a comma-separated string) checked against the item table;
    ``withheld`` columns (a task's target) are left out of the default and refused when named."""
    if fields is None:
        out = [f for f in default_text_fields(dataset) if f not in withheld]
        if not out:
            raise MMKGRecError(f"dataset '{dataset.name}' has no token/token_seq item columns to "
                               "build item text from; set text_fields to columns of its item "
                               f"table (has: {sorted(dataset.item_features)})")
        return out
    if isinstance(fields, str):
        fields = [f.strip() for f in fields.split(",") if f.strip()]
    unknown = [f for f in fields if f not in dataset.item_features]
    if unknown:
        raise MMKGRecError(f"text_fields {unknown} are not item columns of dataset "
                           f"'{dataset.name}' (has: {sorted(dataset.item_features)})")
    leak = [f for f in fields if f in withheld]
    if leak:
        raise ConfigError("text_fields", f"{leak} is the target_column of the task; the item "
                          "text must not carry the target")
    return list(fields)


def _field_text(value, typ: str, column: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if typ in ("token_seq", "float_seq") or isinstance(value, (list, tuple, np.ndarray)):
        parts = [str(v).strip() for v in value]
        parts = [p for p in parts if p.lower() not in _MISSING_TOKENS]
        if not parts:
            return None
        if typ == "token_seq" and not _PROSE.search(column):
            return ", ".join(parts)
        return " ".join(parts)
    if typ == "float":
        return f"{float(value):g}"
    s = str(value).strip()
    return None if s.lower() in _MISSING_TOKENS else s


def _join_fields(parts: list[str]) -> str:
    out = ""
    for p in parts:
        if out:
            out += " " if out[-1] in ".!?" else ". "
        out += p
    return out


def item_texts(dataset, fields=None, withheld=()) -> list[str | None]:
    """One text per dense item id (``None`` where the item has none of ``fields``), never from a
    ``withheld`` column.

    Items missing every field are logged as warnings with their item id; items missing only some
    fields are logged at info level and keep the text of the others."""
    fields = resolve_text_fields(dataset, fields, withheld)
    cols = [(f, dataset.item_features[f], dataset.item_feature_types.get(f, "token"))
            for f in fields]
    texts: list[str | None] = []
    partial = 0
    for i, raw in enumerate(dataset.item_ids):
        parts, lacking = [], []
        for name, col, typ in cols:
            t = _field_text(col[i], typ, name)
            if t is None:
                lacking.append(name)
            else:
                parts.append(t)
        if not parts:
            log.warning("item %s: no text (missing field(s) %s); recorded as missing", raw, lacking)
            texts.append(None)
            continue
        if lacking:
            partial += 1
            log.info("item %s: text field(s) %s missing; using %s", raw, lacking,
                     [f for f in fields if f not in lacking])
        texts.append(_join_fields(parts))
    return texts


def text_key(text: str) -> str:
    """Fingerprint of one text input."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


# --------------------------------------------------------------------------- images

def is_url(ref: str) -> bool:
    return ref.startswith(("http://", "https://"))


def item_image_refs(dataset, image_dir=None, image_column=None, allow_urls: bool = False,
                    allow_outside: bool = False) -> list[str | None]:
    """One image reference (absolute path or URL) per dense item id; ``None`` where an item has
    no image. ``image_dir`` and ``image_column`` are resolved against the dataset folder; a path
    read from the data (an ``image_column`` entry) or a relative ``image_dir`` must stay inside
    it unless ``allow_outside``; URLs are kept only with ``allow_urls`` (ConfigError naming the
    item otherwise)."""
    from ..errors import ConfigError

    base = dataset_folder(dataset) or Path.cwd()
    n = len(dataset.item_ids)
    refs: list[str | None] = [None] * n
    if image_column:
        if image_column not in dataset.item_features:
            raise MMKGRecError(f"image_column '{image_column}' is not an item column of dataset "
                               f"'{dataset.name}' (has: {sorted(dataset.item_features)})")
        col = dataset.item_features[image_column]
        for i in range(n):
            v = col[i]
            if isinstance(v, (list, tuple)):
                v = v[0] if v else None
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            s = str(v).strip()
            if s.lower() in _MISSING_TOKENS:
                continue
            if is_url(s):
                if not allow_urls:
                    raise ConfigError("allow_url_images", f"item '{dataset.item_ids[i]}' has an "
                                      f"image URL in column '{image_column}' ({s[:100]}); images "
                                      "are fetched from the network only with allow_url_images: "
                                      "true")
                refs[i] = s
            else:
                refs[i] = str(confined_path(base / s, base, f"the image of item "
                                        f"'{dataset.item_ids[i]}' in column '{image_column}'",
                                        allow_outside))
    if image_dir:
        folder = Path(os.path.expanduser(str(image_dir)))
        if not folder.is_absolute():  # an absolute folder is the user's own choice
            folder = confined_path(base / folder, base, f"image_dir '{image_dir}'", allow_outside)
        if not folder.is_dir():
            raise MMKGRecError(f"image_dir {folder} (dataset '{dataset.name}') is not a folder")
        found: dict[str, str] = {}
        rank = {e: k for k, e in enumerate(IMAGE_EXTENSIONS)}
        best: dict[str, int] = {}
        with os.scandir(folder) as it:
            for entry in it:
                stem, ext = os.path.splitext(entry.name)
                r = rank.get(ext.lower())
                if r is None or stem in best and best[stem] <= r:
                    continue
                best[stem] = r
                found[stem] = entry.path
        for i, raw in enumerate(dataset.item_ids):
            if refs[i] is None:
                refs[i] = found.get(str(raw))
    n_missing = sum(r is None for r in refs)
    if n_missing:
        first = [str(dataset.item_ids[i]) for i in range(n) if refs[i] is None][:10]
        log.info("%s: %d of %d items have no image (first: %s); recorded as missing",
                 dataset.name, n_missing, n, ", ".join(first))
    return refs


def image_key(ref: str) -> str:
    """Fingerprint of one image input: the URL, or the path with its size and mtime."""
    if is_url(ref):
        return "url:" + hashlib.blake2b(ref.encode(), digest_size=12).hexdigest()
    try:
        st = os.stat(ref)
        sig = f"{ref}|{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        sig = f"{ref}|unreadable"
    return hashlib.blake2b(sig.encode(), digest_size=12).hexdigest()


#: Images declaring more pixels than this are refused before decoding (a decompression bomb, or
#: a file no encoder needs at that size); Pillow's own default limit, kept on whatever Pillow's
#: global ``Image.MAX_IMAGE_PIXELS`` is set to.
MAX_IMAGE_PIXELS = 89_478_485


def _to_rgb(im):
    """``im`` as 8-bit RGB. 16- and 32-bit grey (``I;16*``, ``I``) and float (``F``) images are
    scaled into 0..255 first (Pillow's own conversion clips them, turning most pixels white);
    palette and alpha images go through RGBA; CMYK, L, 1 and the rest through Pillow."""
    from PIL import Image

    if im.mode == "RGB":
        return im.copy()
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.asarray(im)
        if im.mode == "F":
            a = np.nan_to_num(a.astype(np.float64))
            a = a * 255.0 if a.size and a.max() <= 1.0 else a
        elif im.mode.startswith("I;16") or (a.size and a.max() > 255):
            a = a.astype(np.int64) >> 8  # 16-bit range
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "L").convert("RGB")
    if "A" in im.getbands() or im.mode in ("P", "PA"):
        return im.convert("RGBA").convert("RGB")
    return im.convert("RGB")


def load_image(ref: str, draft: tuple[int, int] | None = None, timeout: float = 20.0,
               reduce: bool = False, max_bytes: int = 20_000_000):
    """Decode ``ref`` (a path or URL) into an RGB ``PIL.Image``.

    ``draft`` lets JPEG decoding run at a reduced scale no smaller than that size (for encoders
    that downsample anyway); with ``reduce``, other formats decoded at more than twice that size
    are box-reduced after decoding, to no smaller than it. An image declaring more than
    :data:`MAX_IMAGE_PIXELS` pixels is refused before it is decoded. The source mode of a
    converted image is kept in ``image.info["source_mode"]``; a URL is read for at most
    ``timeout`` seconds and ``max_bytes`` bytes. Raises OSError / ValueError
    (PIL's errors) on a corrupt, truncated, huge, non-image or unreadable input."""
    import warnings

    from PIL import Image

    if is_url(ref):
        import urllib.request

        with urllib.request.urlopen(ref, timeout=timeout) as r:  # noqa: S310 (user-given URL)
            data = r.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ValueError(f"image at {ref[:100]} is larger than max_image_bytes "
                             f"({max_bytes} bytes); refused")
        src = io.BytesIO(data)
    else:
        src = ref
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(src)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
            raise ValueError(f"image exceeds the decompression-bomb limit of "
                             f"{MAX_IMAGE_PIXELS} pixels ({e}); refused") from None
        with im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise ValueError(f"image of {w} x {h} pixels exceeds the decompression-bomb limit "
                                 f"of {MAX_IMAGE_PIXELS} pixels; refused")
            if draft is not None and im.format == "JPEG":
                im.draft("RGB", draft)
            im.load()
            mode, fmt = im.mode, im.format
            im = _to_rgb(im)
    if reduce and draft is not None and fmt != "JPEG":
        factor = min(im.width // draft[0], im.height // draft[1])
        if factor >= 2:
            im = im.reduce(factor)
    if im.width < 1 or im.height < 1:
        raise ValueError("empty image")
    if mode != "RGB":
        im.info["source_mode"] = mode
    return im
