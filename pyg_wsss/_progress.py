"""Progress bars: the one wrapper around :mod:`tqdm.auto` (an optional dependency, extra
``demo``). With ``enabled=False`` nothing is imported and a do-nothing bar is returned, so
callers never branch on whether tqdm is installed or wanted."""
from __future__ import annotations

from typing import Any, Iterable, Iterator

from ._optional import require

__all__ = ["progress", "NullBar"]


class NullBar:
    """The bar of ``progress(..., enabled=False)``: iterates its iterable, ignores the rest
    of the tqdm interface it is used with (``update``, ``set_postfix``, ``set_description``,
    ``write``, ``close``, ``with``)."""

    disable = True

    def __init__(self, iterable: Iterable[Any] | None = None, total: int | None = None) -> None:
        self.iterable = iterable
        self.total = total
        self.n = 0

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this progress bar has no iterable (use update())")
        return iter(self.iterable)

    def __len__(self) -> int:
        if self.total is not None:
            return self.total
        return len(self.iterable)  # type: ignore[arg-type]

    def __enter__(self) -> NullBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n  # type: ignore[assignment]

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_description(self, *args: Any, **kwargs: Any) -> None:
        pass

    def write(self, *args: Any, **kwargs: Any) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def progress(
    iterable: Iterable[Any] | None = None,
    enabled: bool = True,
    desc: str | None = None,
    total: int | None = None,
    **kwargs: Any,
) -> Any:
    """A :func:`tqdm.auto.tqdm` bar over ``iterable`` (or a manual one, ``iterable=None`` +
    ``update()``), or a :class:`NullBar` when ``enabled`` is false.

    Args:
        iterable: What to iterate (``None`` for a bar driven by ``update(n)``).
        enabled: Show a bar. ``False`` neither imports tqdm nor prints anything.
        desc: The bar's label.
        total: Number of steps (default ``len(iterable)`` where it has one).
        **kwargs: Passed to tqdm (e.g. ``leave=False``, ``initial=``, ``unit=``).

    Raises:
        ImportError: ``enabled`` and tqdm is not installed (the message names the extra).

    Example:
        >>> from pyg_wsss._progress import progress
        >>> sum(progress(range(4), enabled=False, desc="sum"))
        6
        >>> bar = progress(total=3, enabled=False)
        >>> bar.update(2); bar.n
        2
    """
    if not enabled:
        return NullBar(iterable, total)
    tqdm = require("tqdm.auto", "progress bars").tqdm
    return tqdm(iterable, desc=desc, total=total, **kwargs)
