"""Text from data on a terminal: control characters shown escaped, never sent raw.

Landing files are untrusted: a payload, a file name or a database error quoting one may hold terminal
escape sequences (colours, cursor moves, a fake prompt). Everything the CLI prints from data passes here.
"""

import re

# C0 and C1 controls except newline and tab, which keep a report's layout, and the bidirectional
# overrides and isolates that make a line read differently from what it holds
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escaped(char: str) -> str:
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def printable(text: object) -> str:
    """`text` with every control character but newline and tab written as `\\xNN` (`\\u202e`)."""
    return _CONTROL.sub(lambda m: _escaped(m.group()), str(text))
