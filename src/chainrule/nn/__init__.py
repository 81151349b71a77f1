"""Neural-network building blocks: :class:`Module`, :class:`Parameter`, layers, losses, init.

Names and semantics follow ``torch.nn``; parameter names match its state_dict keys.
"""

from . import functional, init, utils
from .activation import *  # noqa: F403 - SiLU, ELU, Softplus, PReLU, CosineSimilarity, ...
from .conv import Conv1d, Conv2d, Unflatten
from .module import IncompatibleKeys, Module, Parameter
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .pooling import AdaptiveAvgPool1d, AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from .layers import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    Dropout,
    Flatten,
    GELU,
    HuberLoss,
    KLDivLoss,
    Identity,
    L1Loss,
    LeakyReLU,
    Linear,
    LogSoftmax,
    ModuleDict,
    ModuleList,
    MSELoss,
    NLLLoss,
    ReLU,
    Sequential,
    Sigmoid,
    SmoothL1Loss,
    Softmax,
    Tanh,
    l2_penalty,
)
from .embedding import Embedding, EmbeddingBag
from .rnn import GRU, GRUCell, LSTM, LSTMCell, RNN, RNNBase, RNNCell, RNNCellBase
