"""The replay program of a compiled step (:mod:`chainrule.compile`): straight-line Python source.

The recorded lines (one per primitive the step ran, plus the leaves' gradient sums, NumPy views and
effect calls) become one function, ``def replay(v0, v1, ...)``, whose lines call the primitives'
NumPy forwards directly::

    v2 = linear(v0, p._data, p3._data)
    v3, v4 = softmax_cross_entropy(v2, v1, reduction=c5); v3 = _np.asarray(v3)
    del v2

Each value is deleted after its last use, so the replay's memory follows eager's. Ops whose inputs
are all constants are run once, at generation (:func:`fold`). ``Compiled.code`` shows the source.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import numpy as np

from .autograd import _accumulate_leaf, _grad_tensor
from .primitive import _int_does_not_widen
from .tensor import Tensor


class AttrRef:
    """An attribute whose value is a value of the program (an index array passed to the step)."""

    __slots__ = ("ref",)

    def __init__(self, ref: tuple):
        self.ref = ref

    def __eq__(self, other) -> bool:
        return isinstance(other, AttrRef) and self.ref == other.ref

    __hash__ = None  # type: ignore[assignment]


def attr_refs(v) -> list[AttrRef]:
    """The :class:`AttrRef` an attribute is or holds (a tuple index ``(rows, y)``)."""
    if isinstance(v, AttrRef):
        return [v]
    return [a for x in v for a in attr_refs(x)] if isinstance(v, tuple) else []


#: primitives whose result is not a function of their inputs alone (never folded into a constant)
IMPURE = {"dropout_mask", "random_draw", "multinomial_draw"}
#: effects that do nothing new when run twice: a call that runs eagerly after them loses nothing
IDEMPOTENT = {"zero_grad", "train", "eval"}


class Diverged(Exception):
    """A branch the recorded calls took (:func:`chainrule.modes.branch`) does not hold for this call,
    and nothing the call changed is lost: it runs eagerly instead (the message says which branch)."""


class BranchAfterEffects(RuntimeError):
    """A branch the recorded calls took does not hold for this call, but the replay had already run
    effects that cannot be undone (an update, a random draw), so the call cannot fall back to eager."""

    def __init__(self, what: str):
        super().__init__(f"cr.compile: {what} on this call, unlike on the two recorded calls, and the step had "
                         "already run an effect that cannot be undone (an optimizer step, a write into a tensor, "
                         "a random draw) when the branch was reached: run this step eagerly, or compute the "
                         "branch's input before the effects")


def fold(lines: list[tuple]) -> list[tuple]:
    """Run once, now, every op whose inputs are all constants (``g / n`` of a mean's backward): its
    result becomes a constant of the program instead of a computation on every replay."""
    known: dict[int, Any] = {}
    kept = []
    for line in lines:
        if line[0] == "op" and line[1].name not in IMPURE and len(line[4]) == 1:
            refs = [("c", known[r[1]]) if r[0] == "v" and r[1] in known else r for r in line[2]]
            if all(r[0] == "c" for r in refs) and not any(attr_refs(v) for v in line[3].values()):
                op, attrs, post = line[1], line[3], line[5]
                value = op.forward(*[r[1] for r in refs], **attrs)
                if post is not None:
                    value = np.asarray(value)
                    if post[1]:
                        value = _int_does_not_widen(value, [r[1] for r in refs])
                known[line[4][0][1]] = value
                continue
            line = _substitute(("op", line[1], refs, *line[3:]), known)
        else:
            line = _substitute(line, known)
        kept.append(line)
    return kept


def share(lines: list[tuple]) -> tuple[list[tuple], dict[int, int]]:
    """Common subexpressions: an op that repeats an earlier one on the same inputs (the two products
    ``g * x`` of ``x * x``'s rule, an L2 penalty's) reuses its value instead of computing it again.
    Only values nothing writes into are shared, and the table is forgotten at every write (an
    in-place op, an effect call, a gradient sum). Returns the lines and ``{dropped value: kept value}``."""
    mutated = _mutated(lines)
    seen: dict[tuple, int] = {}
    alias: dict[int, int] = {}
    kept = []
    for line in lines:
        line = _substitute(line, {}, alias) if alias else line
        kind = line[0]
        if kind == "op":
            _, op, refs, attrs, outs, post = line
            if attrs.get("inplace") or "out" in attrs:
                seen.clear()
            elif op.name not in IMPURE and len(outs) == 1 and outs[0][1] not in mutated:
                key = (op, tuple(_key(r) for r in refs), tuple((k, _key(v, True)) for k, v in attrs.items()), post)
                if key in seen:
                    alias[outs[0][1]] = seen[key]
                    continue
                seen[key] = outs[0][1]
        elif kind in ("call", "acc"):
            seen.clear()
        kept.append(line)
    return kept, alias


def _key(r, attr: bool = False):
    """A hashable stand-in for a reference (``attr``: an attribute's value), equal only for the same value."""
    if attr:
        if isinstance(r, AttrRef):
            return ("ref", _key(r.ref))
        if isinstance(r, tuple):
            return tuple(_key(x, True) for x in r)
        try:
            hash(r)
        except TypeError:
            return ("id", id(r))
        return (type(r), r) if not isinstance(r, np.ndarray) else ("id", id(r))
    if r[0] == "w":
        return ("w", _key(r[1]))
    return r if r[0] in "va" else (r[0], id(r[1]))


def _mutated(lines: list[tuple]) -> set[int]:
    """The values something may write into (an in-place op's input, an effect call's argument, a
    gradient handed to a leaf), with every value that shares memory with one of them (views)."""
    out: set[int] = set()
    links: list[tuple[int, int]] = []
    for line in lines:
        kind = line[0]
        if kind == "op" and (line[3].get("inplace") or "out" in line[3]):
            out |= _reads(line[2][:1])
        elif kind == "call":
            out |= _reads(line[2] + list(line[3].values()))
        elif kind == "acc":
            out |= _reads([g for _, g, _ in line[1]]) | {n for _, _, (_, n) in line[1]}
        elif kind in ("view", "elem") and line[2][0] == "v":
            links.append((line[1][1], line[2][1]))
    grew = True
    while grew:
        grew = False
        for a, b in links:
            if (a in out) != (b in out):
                out |= {a, b}
                grew = True
    return out


def _substitute(line, known, alias=None):
    def sub(r):
        if r[0] == "v" and r[1] in known:
            return ("c", known[r[1]])
        if alias and r[0] == "v" and r[1] in alias:
            return ("v", alias[r[1]])
        return ("w", sub(r[1])) if r[0] == "w" else r
    if line[0] == "op":
        def sub_attr(v):
            if isinstance(v, tuple):
                return tuple(sub_attr(x) for x in v)
            if isinstance(v, AttrRef) and v.ref[0] == "v":
                if v.ref[1] in known:
                    return known[v.ref[1]]
                if alias and v.ref[1] in alias:
                    return AttrRef(("v", alias[v.ref[1]]))
            return v
        attrs = {k: sub_attr(v) for k, v in line[3].items()}
        return ("op", line[1], [sub(r) for r in line[2]], attrs, *line[4:])
    if line[0] in ("view", "elem"):
        return (line[0], line[1], sub(line[2]), *line[3:])
    if line[0] == "acc":
        return ("acc", [(leaf, sub(g), n) for leaf, g, n in line[1]], *line[2:])
    if line[0] == "check":
        return ("check", line[1], [sub(r) for r in line[2]], *line[3:])
    return ("call", line[1], [sub(r) for r in line[2]], {k: sub(r) for k, r in line[3].items()})


class _Program:
    """Straight-line Python source for the recorded lines, with its globals (functions, constants)."""

    def __init__(self, labels: dict[int, str] | None = None):
        self.labels = labels or {}  # id(tensor) -> a readable name (the module's parameter name)
        self.globals: dict[str, Any] = {"_acc": _accumulate_leaf, "_wrap": _grad_tensor, "_np": np, "_widen": _int_does_not_widen}
        self.names: dict[int, str] = {}
        self.body: list[str] = []
        self.used: set[int] = set()  # the values some line or the result reads
        self.scalars: set[int] = set()  # 0-d values only ufuncs read: a NumPy scalar serves, no asarray

    def const(self, obj, hint: str = "c") -> str:
        """The global name under which ``obj`` is passed to the program (``hint``, numbered when taken)."""
        name = self.names.get(id(obj))
        if name is None:
            name = hint if hint not in self.globals and hint.isidentifier() else f"{hint}{len(self.names)}"
            self.names[id(obj)] = name
            self.globals[name] = obj
        return name

    def expr(self, ref) -> str:
        kind, x = ref
        if kind == "v":
            return f"v{x}"
        if kind == "a":
            return f"t{x}"
        if kind == "t":
            return f"{self.tensor(x)}._data"
        if kind == "w":
            return f"_wrap({self.expr(x)})"
        return self.tensor(x) if isinstance(x, Tensor) else self.const(x)

    def attr(self, v) -> str:
        """An attribute: a constant, or (an :class:`AttrRef`, or a tuple holding some) read from the program."""
        if isinstance(v, AttrRef):
            return self.expr(v.ref)
        if attr_refs(v):
            return "(" + "".join(f"{self.attr(x)}, " for x in v) + ")"
        return self.const(v)

    def tensor(self, t) -> str:
        """The global name of a tensor the program reads live (a parameter): its module's name for it."""
        return self.const(t, self.labels.get(id(t)) or t.name or "p")


def _emit(lines: list[tuple], prog: _Program) -> list[tuple[str, set[int]]]:
    """One source line per recorded line, each with the values it reads."""
    out = []
    for line in lines:
        kind = line[0]
        if kind == "op":
            _, op, refs, attrs, outs, post = line
            args = [prog.expr(r) for r in refs] + [
                f"{k}={prog.attr(v)}" for k, v in attrs.items()]
            call = _direct(op, refs, attrs, prog) or f"{prog.const(op.forward, op.name)}({', '.join(args)})"
            if op.name == "transpose" and attrs.get("axes") is None and refs[0][0] in "vt":
                call = f"{prog.expr(refs[0])}.T"  # what its forward returns for an array, without the call
            names = [f"v{r[1]}" for r in outs]
            src = f"{', '.join(names)} = {call}" if post is not None or not op.saves else f"{names[0]} = {call}[0]"
            if post is not None and post[0] and outs[0][1] not in prog.scalars:
                src += f"; {names[0]} = _np.asarray({names[0]})"
            if post is not None and post[1]:
                src += f"; {names[0]} = _widen({names[0]}, [{', '.join(prog.expr(r) for r in refs)}])"
            out.append((src, _line_reads(line), {r[1] for r in outs}))
        elif kind == "view":
            _, (_, n), src, how, shape, strides = line
            e = prog.expr(src)
            rhs = {"T": f"{e}.T", "reshape": f"{e}.reshape({shape!r})"}.get(how) or \
                f"_np.ndarray({shape!r}, {e}.dtype, {e}, {how}, {strides!r})"  # how: the offset in bytes
            out.append((f"v{n} = {rhs}", _line_reads(line), {n}))
        elif kind == "elem":
            _, (_, n), src, k = line
            out.append((f"v{n} = {prog.expr(src)}[{k}]", _line_reads(line), {n}))
        elif kind == "acc":
            parts, short = ["_h = set()"], []
            defs: set[int] = set()
            leaves = [prog.expr(leaf) for leaf, _, _ in line[1]]
            for le, (_, g, (_, n)) in zip(leaves, line[1]):
                parts.append(f"_acc({le}, {prog.expr(g)}, False, _h)")
                short.append(f"{le}._grad = _wrap({prog.expr(g)})")
                if n in prog.used:  # the gradient as a value of the program (an update written by hand reads it)
                    parts.append(f"v{n} = {le}._grad._data")
                    short.append(parts[-1])
                    defs.add(n)
            src = "; ".join(parts)
            if len(line) > 2 and line[2] and leaves and all(g[0] == "v" for _, g, _ in line[1]):
                # both recordings handed each leaf its gradient as it was (no gradient before, no copy):
                # the same again whenever the leaves have no gradient (zero_grad), else the general way
                src = (f"if {' is '.join(f'{le}._grad' for le in leaves)} is None:\n        {'; '.join(short)}"
                       f"\n    else:\n        {src}")
            out.append((src, _line_reads(line), defs))
        elif kind == "check":
            _, test, refs, result, what, safe = line
            args = ", ".join(prog.expr(r) for r in refs)
            fail = prog.const(Diverged if safe else BranchAfterEffects, "_Diverged" if safe else "_Broken")
            out.append((f"if {prog.const(test, test.__name__)}({args}) is not {result}: raise {fail}({what!r})",
                        _line_reads(line), set()))
        else:
            _, method, refs, kw = line
            args = [prog.expr(r) for r in refs] + [f"{k}={prog.expr(r)}" for k, r in kw.items()]
            name = prog.const(method, method.__qualname__.replace(".", "_"))
            out.append((f"{name}({', '.join(args)})", _line_reads(line), set()))
    return out


def _direct(op, refs, attrs, prog: _Program) -> str | None:
    """The NumPy call an elementwise op's or a reduction's forward makes, without the forward around
    it (which only adds a readable error for shapes that the replay's signature has already fixed)."""
    f = op.forward
    u = getattr(f, "ufunc", None)
    if u is not None and not attrs:
        form = _OPERATORS.get(u)
        if form is not None and any(r[0] == "v" for r in refs) and all(_scalar(r, prog) for r in refs):
            # NumPy's scalar math (a value of the program is a NumPy scalar): a tenth of the call
            return form.format(*(prog.const(r[1][()], "s") if r[0] == "c" and isinstance(r[1], np.ndarray)
                                 else prog.expr(r) for r in refs))
        args = [prog.expr(r) for r in refs]
        return f"{prog.const(u, 'np_' + getattr(u, '__name__', op.name))}({', '.join(args)})"
    reduce = getattr(f, "reduce", None)
    if reduce is not None and len(refs) == 1 and set(attrs) <= {"axis", "keepdims"}:
        axis, keep = (prog.attr(attrs[k]) if k in attrs else d for k, d in (("axis", "None"), ("keepdims", "False")))
        return f"{prog.const(reduce, op.name + '_reduce')}({prog.expr(refs[0])}, {axis}, None, None, {keep})"
    return None


#: ufuncs whose Python operator on NumPy scalars computes the same numbers (NumPy's scalar math
#: runs the ufunc's operation in the same dtype, under the same error state) in ~0.1 us instead of ~0.9
_OPERATORS = {np.add: "({} + {})", np.subtract: "({} - {})", np.multiply: "({} * {})", np.divide: "({} / {})",
              np.negative: "(-{})"}


def _scalar(ref, prog: _Program) -> bool:
    """Whether ``ref`` is a number when the program runs: a 0-d value it keeps as a NumPy scalar, or a
    constant Python or NumPy number or 0-d array (passed as its NumPy scalar: the same dtype, and both
    take part in NumPy's type promotion alike; a constant is fixed at recording, docs/compile.md)."""
    if ref[0] == "v":
        return ref[1] in prog.scalars
    x = ref[1]
    if ref[0] != "c" or isinstance(x, (bool, np.bool_)):
        return False
    return isinstance(x, (np.generic, int, float)) or isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind in "iuf"


def _reads(refs) -> set[int]:
    got = set()
    for r in refs:
        if r[0] == "v":
            got.add(r[1])
        elif r[0] == "w":
            got |= _reads([r[1]])
    return got


def _direct_call(line) -> bool:
    """Whether :func:`_direct` turns this op line into a bare ufunc call (which takes a NumPy scalar as a 0-d array)."""
    return line[0] == "op" and getattr(line[1].forward, "ufunc", None) is not None and not line[3]


def _scalars(lines: list[tuple], candidates: set[int]) -> set[int]:
    """The 0-d results (``post[0]``) whose every reader is a bare ufunc call: they may stay NumPy scalars
    (the same numbers; ``_np.asarray`` would only wrap them)."""
    ok = candidates & {line[4][0][1] for line in lines if line[0] == "op" and line[5] is not None and line[5][0]}
    for line in lines:
        if not _direct_call(line):
            ok -= _line_reads(line)
    return ok


def _line_reads(line) -> set[int]:
    """The values a recorded line reads."""
    kind = line[0]
    if kind == "op":
        return _reads(line[2] + [a.ref for v in line[3].values() for a in attr_refs(v)])
    if kind in ("view", "elem"):
        return _reads([line[2]])
    if kind == "acc":
        return _reads([g for _, g, _ in line[1]])
    if kind == "call":
        return _reads(line[2] + list(line[3].values()))
    return _reads(line[2])  # a check


def _renamed(template, alias: dict[int, int]):
    """The result's template with every dropped value (:func:`share`) replaced by the one kept."""
    if not alias:
        return template
    kind = template[0]
    if kind in ("tensor", "item", "array"):
        r = template[1]
        return (kind, ("v", alias[r[1]]) if r[0] == "v" and r[1] in alias else r)
    if kind in ("seq", "dict"):
        return (kind, template[1], [_renamed(t, alias) for t in template[2]])
    return template


def _result(template, prog: _Program) -> tuple[str, set[int]]:
    kind = template[0]
    if kind == "tensor":
        return f"_wrap({prog.expr(template[1])})", _reads([template[1]])
    if kind == "item":
        return f"{prog.expr(template[1])}.item()", _reads([template[1]])
    if kind == "array":
        return prog.expr(template[1]), _reads([template[1]])
    if kind in ("seq", "dict"):
        parts = [_result(t, prog) for t in template[2]]
        used = set().union(*(u for _, u in parts)) if parts else set()
        items = ", ".join(p for p, _ in parts)
        if kind == "dict":
            return f"dict(zip({prog.const(template[1])}, ({items},)))", used
        body = f"({items},)"
        return (body if template[1] is tuple else f"{prog.const(template[1])}({body})"), used
    return prog.const(template[1]), set()


def _place_checks(lines: list[tuple], n_arrays: int) -> list[tuple]:
    """Each branch check, marked with whether failing it may fall back to eager: it may when no effect
    ran before it; a check that reads only the step's arguments moves to the top when no write
    (a call that is not :data:`IDEMPOTENT`) comes before it. Any other check raises :class:`BranchAfterEffects`."""
    first, out, effect, written = [], [], False, False
    for line in lines:
        kind = line[0]
        if kind == "check":
            inputs = all(r[0] in "ac" or r[0] == "v" and r[1] < n_arrays for r in line[2])
            if not effect or (inputs and not written):
                (out if not effect else first).append((*line, True))
            else:
                out.append((*line, False))
            continue
        if kind == "call" and getattr(line[1], "__name__", "") not in IDEMPOTENT:
            effect = written = True
        elif kind == "acc" or kind == "op" and line[1].name in IMPURE:
            effect = True
        out.append(line)
    return first + out


def generate(lines, template, n_arrays: int, n_tensors: int, name: str, labels=None) -> tuple[Callable, str]:
    """The replay function and its source; each value is deleted after its last use (eager's memory)."""
    prog = _Program(labels)
    lines, alias = share(lines)
    template = _renamed(template, alias)
    result_reads = _result(template, _Program())[1]
    line_reads = set().union(*map(_line_reads, lines))
    prog.used = line_reads | result_reads
    prog.scalars = _scalars(lines, line_reads - result_reads)
    emitted = _emit(_place_checks(lines, n_arrays), prog)
    ret, ret_reads = _result(template, prog)
    last: dict[int, int] = {}
    for i, (_, reads, defs) in enumerate(emitted):
        for n in defs:
            last.setdefault(n, i)  # a value nobody reads dies where it is made
        for n in reads:
            last[n] = i
    params = [f"v{i}" for i in range(n_arrays)] + [f"t{i}" for i in range(n_tensors)]
    body = []
    for i, (src, _, _) in enumerate(emitted):
        body.append(f"    {src}")
        dead = sorted(n for n, k in last.items() if k == i and n not in ret_reads)
        if dead:
            body.append(f"    del {', '.join(f'v{n}' for n in dead)}")
    body.append(f"    return {ret}")
    source = f"def replay({', '.join(params)}):\n" + "\n".join(body) + "\n"
    code = builtins.compile(source, f"<chainrule.compile {name}>", "exec")
    exec(code, prog.globals)  # our own generated source, never text from a file or a user
    return prog.globals["replay"], source
