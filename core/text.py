"""Text from data on a terminal: control characters shown escaped, never sent raw.

Landing files are untrusted: a payload, a file name or a database error quoting one may hold terminal
escape sequences (colours, cursor moves, a fake prompt). Everything the CLI prints from data passes here.
"""

import re

# C0 and C1 controls except newline and tab, which keep a report's layout
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """`text` with every control character but newline and tab written as `\\xNN`."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))
