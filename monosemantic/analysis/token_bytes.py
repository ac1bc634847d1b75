"""A byte-level BPE token's bytes (GPT-2's byte <-> printable-character mapping), split into UTF-8 units.

Byte-level BPE splits rare multi-byte characters across tokens, so a token's bytes can begin with the end of a
character and end with the start of one; `split_units` names those fragments, which the proxies
(proxies.py) judge by the characters they can belong to. `token_label` shows a token id as readable text.
"""

from __future__ import annotations

import functools

from monosemantic.data.tokenizer import EOT_ID


@functools.lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode (what HF's ByteLevel pre-tokenizer uses)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def vocab_bytes(tok) -> list[bytes]:
    """The bytes of every token id of a byte-level BPE tokenizer (special tokens: b"")."""
    dec = byte_decoder()
    out = []
    for i in range(tok.get_vocab_size()):
        s = tok.id_to_token(i)
        if s is None or i == EOT_ID or any(ch not in dec for ch in s):
            out.append(b"")
        else:
            out.append(bytes(dec[ch] for ch in s))
    return out


def _utf8_len(lead: int) -> int:
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0  # a continuation byte or invalid


def _is_cont(b: int) -> bool:
    return 0x80 <= b <= 0xBF


def split_units(b: bytes) -> list[tuple[str, bytes]] | None:
    """A token's bytes as units: ("char", utf8 bytes) for complete characters, ("head", bytes) for
    continuation bytes at the start (the end of a character begun in the previous token), ("tail", bytes) for
    an incomplete character at the end. None if the bytes are not a slice of valid UTF-8."""
    units, i, n = [], 0, len(b)
    while i < n and _is_cont(b[i]):
        i += 1
    if i:
        if i > 3:
            return None
        units.append(("head", b[:i]))
    while i < n:
        k = _utf8_len(b[i])
        if k == 0:
            return None
        j = i + 1
        while j < n and j < i + k and _is_cont(b[j]):
            j += 1
        if j - i == k:
            units.append(("char", b[i:j]))
        elif j == n:
            units.append(("tail", b[i:j]))
        else:
            return None
        i = j
    return units


def token_label(tok, i: int) -> str:
    """A token id as readable text (partial UTF-8 bytes shown as hex)."""
    b = vocab_bytes_cached(tok)[i]
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(chr(c) if c < 0x80 else f"\\x{c:02x}" for c in b)


_VOCAB_CACHE: dict[int, list[bytes]] = {}


def vocab_bytes_cached(tok) -> list[bytes]:
    key = id(tok)
    if key not in _VOCAB_CACHE:
        _VOCAB_CACHE[key] = vocab_bytes(tok)
    return _VOCAB_CACHE[key]
