"""RTSP over TCP after PLAY: `$`-framed RTP/RTCP packets (RFC 2326 10.12) mixed with RTSP messages
(replies to our keep-alives, the odd request from the camera), split apart incrementally. Pure: no I/O.

Bounded against a hostile camera: what waits for the rest of a frame is at most one frame (64 KB) or one
message (MAX_MESSAGE); bytes that are neither are skipped up to the next `$` and counted.
"""

from __future__ import annotations

import re

MAX_MESSAGE = 64 * 1024  # an RTSP message's head and body together
_LENGTH = re.compile(rb"(?im)^content-length[ \t]*:[ \t]*(\d{1,9})[ \t]*\r?$")


class Demuxer:
    """Feed received bytes, get (channel, payload) of every complete interleaved frame."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.skipped = 0  # bytes that were neither a frame nor a message
        self.messages = 0  # RTSP messages seen (and dropped: nobody waits for them)

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buf
        buf += data
        out: list[tuple[int, bytes]] = []
        pos, n = 0, len(buf)
        while pos < n:
            if buf[pos] == 0x24:  # '$'
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                if n - pos - 4 < length:
                    break
                out.append((buf[pos + 1], bytes(buf[pos + 4:pos + 4 + length])))
                pos += 4 + length
                continue
            end = buf.find(b"\r\n\r\n", pos, pos + MAX_MESSAGE)
            if end >= 0:
                match = _LENGTH.search(buf, pos, end + 2)
                body = int(match.group(1)) if match else 0
                if end + 4 + body - pos <= MAX_MESSAGE:
                    if end + 4 + body > n:
                        break  # the body is still coming
                    self.messages += 1
                    pos = end + 4 + body
                    continue
            elif n - pos < MAX_MESSAGE:
                break  # perhaps a message whose head is still coming
            skip = buf.find(b"$", pos + 1)  # neither: resynchronise at the next frame
            skip = n if skip < 0 else skip
            self.skipped += skip - pos
            pos = skip
        del buf[:pos]
        return out
