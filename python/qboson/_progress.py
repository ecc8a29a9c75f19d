"""Progress bars (tqdm) that cost nothing when disabled."""

from __future__ import annotations

import contextlib


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass


@contextlib.contextmanager
def progress_bar(total: int, enabled: bool, **kwargs):
    """A tqdm bar over ``total`` items with an ETA, or a no-op object when not ``enabled``."""
    if not enabled:
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, dynamic_ncols=True, smoothing=0.1, **kwargs) as bar:
        yield bar
