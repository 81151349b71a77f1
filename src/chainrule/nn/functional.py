"""``import chainrule.nn.functional as F``: the same functions as :mod:`chainrule.functional`
(PyTorch's spelling of the import). Anything added there later is reachable here too."""

from .. import functional as _functional
from ..functional import *  # noqa: F403
from .layers import l2_penalty  # noqa: F401


def __getattr__(name: str):
    return getattr(_functional, name)
from .embedding import embedding, embedding_bag  # noqa: E402, F401
