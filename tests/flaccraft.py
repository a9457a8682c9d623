"""FLAC files crafted bit by bit, with samples beyond their bit depth, as in the vendor's files.

The vendor's example recordings (`loccus-ai/examples`, batch-testing/audios) were written by
libFLAC 1.3.3, which encoded whatever int32 it was given: 7 of the 20 carry a sample of
+32768 (a full-scale peak that was never clipped to 32767) in a 16-bit stream. libFLAC ≥ 1.4
checks every decoded sample against the bit depth and calls such a frame a CRC mismatch, then
loses sync, so libsndfile (the `soundfile` wheel) fails on them; FFmpeg decodes them (the value
wraps to -32768). No FFmpeg encoder writes such a stream, so this module writes one itself:
each frame is one FIXED order-1 subframe per channel (a warm-up sample, then the differences,
escape-coded as raw signed integers), which can carry any value the differences reach.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

_RATE_CODES = {8000: 4, 16000: 5, 22050: 6, 24000: 7, 32000: 8, 44100: 9, 48000: 10}
_BPS_CODES = {8: 1, 12: 2, 16: 4, 20: 5, 24: 6}
BLOCK = 4096


class _Bits:
    def __init__(self) -> None:
        self.value = 0
        self.length = 0

    def put(self, value: int, bits: int) -> None:
        self.value = (self.value << bits) | (value & ((1 << bits) - 1))
        self.length += bits

    def to_bytes(self) -> bytes:
        pad = -self.length % 8
        return (self.value << pad).to_bytes((self.length + pad) // 8, "big")


def _crc(data: bytes, poly: int, width: int) -> int:
    crc, top, mask = 0, 1 << (width - 1), (1 << width) - 1
    for byte in data:
        crc ^= byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
    return crc


def _utf8_number(n: int) -> bytes:
    """A frame number in FLAC's UTF-8-like coding (enough for 2**31 frames)."""
    return chr(n).encode("utf-8", "surrogatepass")


def _frame(index: int, block: np.ndarray, rate: int, bps: int) -> bytes:
    head = _Bits()
    head.put(0b11111111111110, 14)
    head.put(0, 1)  # reserved
    head.put(0, 1)  # fixed block size
    head.put(0b0111, 4)  # block size: 16 bits (size - 1) at the end of the header
    head.put(_RATE_CODES.get(rate, 0), 4)
    head.put(block.shape[0] - 1, 4)  # independent channels
    head.put(_BPS_CODES[bps], 3)
    head.put(0, 1)
    header = head.to_bytes() + _utf8_number(index)
    header += (block.shape[1] - 1).to_bytes(2, "big")
    header += bytes([_crc(header, 0x07, 8)])
    body = _Bits()
    for channel in block:
        values = [int(v) for v in channel]
        diffs = [b - a for a, b in itertools.pairwise(values)]
        raw_bits = max((max(abs(d) for d in diffs).bit_length() + 1) if diffs else 1, 1)
        body.put(0, 1)  # zero pad bit
        body.put(0b001001, 6)  # FIXED, order 1
        body.put(0, 1)  # no wasted bits
        body.put(values[0], bps)  # warm-up sample: must itself fit the bit depth
        body.put(0b00, 2)  # Rice coding, 4-bit parameters
        body.put(0, 4)  # partition order 0: one partition
        body.put(0b1111, 4)  # escape: the residuals follow as raw signed integers
        body.put(raw_bits, 5)
        for d in diffs:
            body.put(d, raw_bits)
    frame = header + body.to_bytes()
    return frame + _crc(frame, 0x8005, 16).to_bytes(2, "big")


def write_flac_ints(path: Path, samples: np.ndarray, rate: int, bps: int = 16) -> Path:
    """Write integer `samples` ((n,) or (channels, n)) as FLAC exactly as given, in range or not."""
    planes = np.atleast_2d(np.asarray(samples, dtype=np.int64))
    channels, total = planes.shape
    info = bytearray()
    info += BLOCK.to_bytes(2, "big") * 2  # min and max block size
    info += bytes(6)  # min and max frame size: unknown
    packed = (rate << 44) | ((channels - 1) << 41) | ((bps - 1) << 36) | total
    info += packed.to_bytes(8, "big")
    info += bytes(16)  # MD5 unknown: decoders skip the check
    out = bytearray(b"fLaC")
    out += bytes([0x80]) + len(info).to_bytes(3, "big") + info  # STREAMINFO, the last block
    for index, start in enumerate(range(0, total, BLOCK)):
        out += _frame(index, planes[:, start : start + BLOCK], rate, bps)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path


def write_peak_beyond_range(
    path: Path, signal: np.ndarray, rate: int, at: int | None = None
) -> tuple[Path, int]:
    """`signal` (float, mono) as 16-bit FLAC, normalised to 32767 except one +32768 peak.

    That one sample is what the vendor's files have: a +1.0 peak scaled by 32768 and never
    clipped. Returns the path and the index of the out-of-range sample (not a frame's first).
    """
    x = np.asarray(signal, dtype=np.float64)
    ints = np.round(x / np.max(np.abs(x)) * 32767).astype(np.int64)
    where = int(np.argmax(ints)) if at is None else at
    if where % BLOCK == 0:
        where += 1
    ints[where] = 32768
    return write_flac_ints(path, ints, rate), where
