"""Aliases for the annotations of the public signatures (types only; nothing
here runs in a computation).

The annotations describe the numpy case: numpy (or list, scalar) input,
numpy result. A CuPy input gives a CuPy result, which type checkers see as
Any (CuPy ships no type information).
"""

from __future__ import annotations

from typing import Any

from numpy.typing import NDArray

__all__ = ["Array", "ArrayInput", "Sparse"]

#: An array argument: a numpy or CuPy array, or anything numpy.asarray takes
#: (lists, scalars). Its shape and dtype are checked at run time (TypeError,
#: ValueError); for the type checker it is Any, because CuPy arrays are not
#: numpy.typing.ArrayLike and the functions accept both.
ArrayInput = Any

#: A result array: numpy.ndarray (cupy.ndarray for CuPy input).
Array = NDArray[Any]
#: A sparse matrix or array: scipy.sparse (cupyx.scipy.sparse on the GPU);
#: scipy.sparse's classes carry no type parameters for mypy to check.
Sparse = Any
