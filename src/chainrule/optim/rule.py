"""Update rules written once, as the lecture writes them, and everything an optimizer runs made from them.

An optimizer's update is a plain Python function of arrays and scalars, for example (adaptive.py)::

    def adam(theta, g, m, v, v_max, *, lr, beta1, beta2, eps, weight_decay, t, amsgrad, maximize,
             decoupled_weight_decay):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        ...
        theta = theta - lr * (m_hat / (sqrt(v_hat) + eps))
        return theta, m, v, v_max

Positional arguments are arrays: the parameter ``theta``, its gradient ``g``, then the state;
keyword-only ones are scalars: hyperparameters, flags, the step count ``t``. It returns the new
``theta`` and state. Called directly with NumPy arrays it runs as it reads (allocating a new array
per operation). :class:`UpdateRule` reads its source instead (the syntax tree: the function is not
called) and, for each combination of its flags, builds a :class:`Program` with

- ``constants(kw, f)``: every maximal scalar subexpression (``1 - beta1``, ``1 - beta1**t``,
  ``lr``) evaluated in Python floats and rounded once to the parameter's dtype ``f``. That is what
  NumPy does with a Python scalar in ``beta1 * m``, so the programs give the direct call's bits.
- ``numpy(theta, g, state, scratch, consts)``: one ufunc per operation, in place: ``out=`` the
  parameter, the state arrays and a few scratch buffers the optimizer allocates once.
- ``kernel_source(name)``: the same operations on one element inside a loop over the arrays, which
  numba compiles into one pass (optim/_fused.py). Same operations in the same order: same bits.
- ``equations(kw)``: the rule's lines with the group's current numbers, for ``describe()``.

A rule's body may use assignments (``x = ...``, ``x -= ...``), ``if``/``elif``/``else`` and
``a if c else b`` whose conditions read only keyword arguments (they pick the program: variants
are flags, not copies), ``+ - * /``, unary ``-``, ``sqrt`` and ``maximum``, and a final ``return``.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import operator
import re
import textwrap

import numpy as np

#: Keyword arguments that vary per parameter (its step count, its first step), not per group.
PER_PARAMETER = ("t", "first")

_UFUNCS = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide"}
_INFIX = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/"}
_CALLS = {"sqrt": 1, "maximum": 2}  # the functions a rule may call (NumPy's), by arity
_FOREVER = float("inf")


def define(source: str, name: str, filename: str = "<update rule>"):
    """The function ``name`` that ``source`` defines. The source is generated in this module from a
    rule's syntax tree, never read from a file or a client (as dataclasses and namedtuple define
    their methods); ``filename`` is where numba's disk cache looks for it."""
    namespace = {"np": np, "__name__": __name__}  # numba's cache rebuilds the globals from this module
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]


def _fmt(x) -> str:
    """A number as it should read in an equation: 0.001, 1e-08, 0.9."""
    return f"{x:g}" if isinstance(x, float) else str(x)


class UpdateRule:
    """An update rule read from its function's source; ``program(flags)`` builds what runs.

    ``state`` maps the rule's state arguments (``m``) to the optimizer's state keys (torch's,
    ``exp_avg``); ``symbols`` renames variables for ``describe()`` (``Eg2`` -> ``E[g^2]``)."""

    def __init__(self, fn, state: dict[str, str], symbols: dict[str, str] | None = None):
        self.name, self.fn = fn.__name__, fn
        self.filename = inspect.getsourcefile(fn) or "<update rule>"
        source = textwrap.dedent(inspect.getsource(fn))
        (fdef,) = ast.parse(source).body
        self.arrays = [a.arg for a in fdef.args.args]
        if self.arrays[:2] != ["theta", "g"] or set(self.arrays[2:]) != set(state):
            raise TypeError(f"update rule {self.name}: positional arguments must be theta, g and the state "
                            f"{sorted(state)}, got {self.arrays}")
        self.state_keys = dict(state)
        self.scalars = [a.arg for a in fdef.args.kwonlyargs]
        self.symbols = symbols or {}
        self.source = source
        self.comments = {i: line.split("#", 1)[1].strip() for i, line in enumerate(source.splitlines(), 1)
                         if "#" in line}
        self.body = [s for s in fdef.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        if not (self.body and isinstance(self.body[-1], ast.Return)
                and [getattr(e, "id", None) for e in getattr(self.body[-1].value, "elts", [])] == self.outputs):
            raise TypeError(f"update rule {self.name} must end with `return {', '.join(self.outputs)}`")
        self.conditions = [n.test for n in ast.walk(fdef) if isinstance(n, (ast.If, ast.IfExp))]
        for c in self.conditions:
            names = {n.id for n in ast.walk(c) if isinstance(n, ast.Name)}
            if not names <= set(self.scalars):
                raise TypeError(f"update rule {self.name}, line {c.lineno}: a condition may read only keyword "
                                f"arguments, not {sorted(names - set(self.scalars))}")
        self._index = {id(c): i for i, c in enumerate(self.conditions)}
        #: the group-level values that determine the programs and constants (a change is seen at once)
        self.hyper = operator.itemgetter(*[s for s in self.scalars if s not in PER_PARAMETER])
        tests = ", ".join(f"bool({ast.unparse(c)})" for c in self.conditions)
        self.flags = define(_function("flags", ["kw"], self._loads(self.conditions), f"({tests}{',' if tests else ''})"),
                            "flags")
        self._programs: dict[tuple, Program] = {}

    def document(self, doc: str) -> str:
        """``doc`` with the line ``{rule}`` replaced by this rule's source, indented as that line."""
        lines = []
        for line in doc.splitlines():
            pad = line[: len(line) - len(line.lstrip())]
            lines += [pad + s if s else "" for s in self.source.rstrip().splitlines()] if line.strip() == "{rule}" else [line]
        return "\n".join(lines)

    @property
    def outputs(self) -> list[str]:
        return [a for a in self.arrays if a != "g"]

    def program(self, flags: tuple) -> Program:
        """The program for one outcome of the conditions (built on first use)."""
        p = self._programs.get(flags)
        if p is None:
            p = self._programs[flags] = Program(self, flags)
        return p

    def prepare(self, kw: dict, dtype) -> tuple[Program, tuple]:
        """The program for these scalars and its constants in ``dtype``."""
        program = self.program(self.flags(kw))
        return program, program.constants(kw, np.dtype(dtype).type)

    def _loads(self, nodes) -> list[str]:
        used = {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}
        return [f'{s} = kw["{s}"]' for s in self.scalars if s in used]


def _function(name: str, params: list[str], body: list[str], result: str | None = None) -> str:
    lines = [f"def {name}({', '.join(params)}):"] + ["    " + b for b in body]
    return "\n".join(lines + ([f"    return {result}"] if result is not None else ["    pass"] if not body else []))


class _Lowering:
    """One specialisation of a rule: conditions resolved, array arithmetic as a list of operations on
    numbered values (each assigned once), scalar arithmetic as constant expressions."""

    def __init__(self, rule: UpdateRule, flags: tuple):
        self.rule, self.flags = rule, flags
        self.consulted: list[tuple[str, bool]] = []   # (condition, outcome): the program's name
        self.consts: list[str] = []                   # Python source of each constant k<i>
        self.scalar_lines: list[str] = []             # scalar locals (lr_t = ...), in order
        self.scalar_locals: set[str] = set()
        self.ops: list[tuple[str, tuple, int]] = []   # (ufunc name, operands, result value)
        self.inputs = {i: a for i, a in enumerate(rule.arrays)}   # value -> the array it is read from
        self.env = {a: i for i, a in self.inputs.items()}         # array name -> its current value
        self.taken: list[tuple[str, ast.expr, int]] = []          # (target, expression, line) run
        self._block(rule.body[:-1])
        self.outputs = {a: self.env[a] for a in rule.outputs if self.env[a] != rule.arrays.index(a)}
        read = {j for _, args, _ in self.ops for kind, j in args if kind == "v"} | set(self.outputs.values())
        self.read = [j for j in self.inputs if j in read]
        used = {self.inputs[j] for j in self.read} | set(self.outputs)
        self.state = [a for a in rule.arrays[2:] if a in used]

    # ----- statements ---------------------------------------------------------------------------------
    def _block(self, body):
        for st in body:
            if isinstance(st, ast.If):
                self._block(st.body if self.cond(st.test) else st.orelse)
            elif isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name):
                self._assign(st.targets[0].id, st.value, st.lineno)
            elif isinstance(st, ast.AugAssign) and isinstance(st.target, ast.Name) and type(st.op) in _UFUNCS:
                self._assign(st.target.id, ast.BinOp(ast.Name(st.target.id), st.op, st.value), st.lineno)
            else:
                raise self._error(st, "only assignments, if/else and a final return are allowed")

    def cond(self, test) -> bool:
        on = self.flags[self.rule._index[id(test)]]
        self.consulted.append((ast.unparse(test), on))
        return on

    def _assign(self, name: str, value: ast.expr, line: int):
        self.taken.append((name, value, line))
        if self.scalar(value):
            if name in self.env:
                raise self._error(value, f"{name} is an array; a scalar cannot be assigned to it")
            self.scalar_locals.add(name)
            self.scalar_lines.append(f"{name} = {ast.unparse(value)}")
            return
        if name in self.scalar_locals:
            raise self._error(value, f"{name} is a scalar; an array cannot be assigned to it")
        kind, j = self.operand(value)
        self.env[name] = j

    # ----- expressions --------------------------------------------------------------------------------
    def scalar(self, node) -> bool:
        """Only keyword arguments, scalar locals and numbers: one constant, computed in Python floats."""
        scalars = set(self.rule.scalars) | self.scalar_locals
        return all(n.id in scalars for n in ast.walk(node) if isinstance(n, ast.Name)) and not any(
            isinstance(n, ast.Call) for n in ast.walk(node))

    def operand(self, node) -> tuple[str, int]:
        if self.scalar(node):
            text = ast.unparse(node)
            if text not in self.consts:
                self.consts.append(text)
            return ("k", self.consts.index(text))
        if isinstance(node, ast.Name):
            if node.id not in self.env:
                raise self._error(node, f"unknown name {node.id}")
            return ("v", self.env[node.id])
        if isinstance(node, ast.IfExp):
            return self.operand(node.body if self.cond(node.test) else node.orelse)
        if isinstance(node, ast.BinOp) and type(node.op) in _UFUNCS:
            return self._op(_UFUNCS[type(node.op)], node.left, node.right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return self._op("negative", node.operand)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords
                and _CALLS.get(node.func.id) == len(node.args)):
            return self._op(node.func.id, *node.args)
        raise self._error(node, "arrays take + - * /, unary -, sqrt(a) and maximum(a, b) (write g * g for g**2)")

    def _op(self, fn: str, *nodes) -> tuple[str, int]:
        args = tuple(self.operand(n) for n in nodes)
        if all(kind == "k" for kind, _ in args):  # NumPy would compute it in float64, the kernel in the dtype
            raise self._error(nodes[0], f"{fn}() of scalars: write it with ** (x ** 0.5) or pass it in")
        result = len(self.inputs) + len(self.ops)
        self.ops.append((fn, args, result))
        return ("v", result)

    def _error(self, node, what: str) -> TypeError:
        return TypeError(f"update rule {self.rule.name}, line {getattr(node, 'lineno', '?')}: {what}")


class Program:
    """What runs for one specialisation of a rule (see the module docstring)."""

    def __init__(self, rule: UpdateRule, flags: tuple):
        low = self._low = _Lowering(rule, flags)
        self.rule = rule
        self.name = rule.name + "".join(f"[{c}]" for c in dict.fromkeys(c for c, on in low.consulted if on))
        self.state_keys = tuple(rule.state_keys[a] for a in low.state)
        body = rule._loads(ast.parse(c) for c in low.consts + low.scalar_lines) + low.scalar_lines
        consts = ", ".join(f"f({c})" for c in low.consts)
        self.constants = define(_function("constants", ["kw", "f"], body, f"({consts}{',' if consts else ''})"),
                                "constants")
        self.numpy_source, self.n_scratch = self._numpy_source()
        self.numpy = define(self.numpy_source, "numpy_" + rule.name)

    def _numpy_source(self) -> tuple[str, int]:
        """Ufunc calls with ``out=``: a result goes into its array's storage when it is that array's
        final value, else into a storage whose value is no longer needed (an operand's, if it can be
        overwritten), else into a scratch buffer."""
        low = self._low
        last = {}
        for i, (_, args, _) in enumerate(low.ops):
            for kind, j in args:
                if kind == "v":
                    last[j] = i
        final = {j: a for a, j in low.outputs.items()}
        for j in final:
            last[j] = _FOREVER
        where = {j: a for j, a in low.inputs.items()}   # value -> storage
        holds = {a: j for j, a in low.inputs.items()}   # storage -> value
        writable = set(low.rule.outputs)
        scratch: list[str] = []
        lines = []

        def free(storage, i):
            return storage in writable and last.get(holds.get(storage), -1) <= i

        for i, (fn, args, r) in enumerate(low.ops):
            own = [where[j] for kind, j in args if kind == "v"]
            out = final.get(r) if r in final and free(final[r], i) else None
            out = out or next((s for s in own + scratch if free(s, i)), None)
            if out is None:
                out = f"s{len(scratch)}"
                scratch.append(out)
                writable.add(out)
            operands = ", ".join(f"k{j}" if kind == "k" else where[j] for kind, j in args)
            lines.append(f"np.{fn}({operands}, out={out})")
            where[r], holds[out] = out, r
        for a, j in low.outputs.items():
            if where[j] != a:
                if where[j] in low.outputs:
                    raise TypeError(f"update rule {low.rule.name}: {a}'s new value is in {where[j]}, which is "
                                    "itself overwritten: compute it separately")
                lines.append(f"np.copyto({a}, {where[j]})")
        head = [f"{', '.join(low.state)}, = state"] if low.state else []
        head += [f"s{i} = scratch[{i}]" for i in range(len(scratch))]
        head += [f"{', '.join(f'k{i}' for i in range(len(low.consts)))}, = consts"] if low.consts else []
        return _function("numpy_" + low.rule.name, ["theta", "g", "state", "scratch", "consts"], head + lines), len(scratch)

    def kernel_source(self, name: str) -> str:
        """The operations on element ``i`` of every array, in a loop: what numba compiles."""
        low = self._low
        var = {j: f"x{j}" for j in range(len(low.inputs) + len(low.ops))}
        lines = [f"{var[j]} = {low.inputs[j]}[i]" for j in low.read]
        for fn, args, r in low.ops:
            a = [f"k{j}" if kind == "k" else var[j] for kind, j in args]
            expr = f"{a[0]} {_INFIX[fn]} {a[1]}" if fn in _INFIX else f"-{a[0]}" if fn == "negative" else \
                f"np.{fn}({', '.join(a)})"
            lines.append(f"{var[r]} = {expr}")
        lines += [f"{a}[i] = {var[j]}" for a, j in low.outputs.items()]
        params = ["theta", "g", *low.state] + [f"k{i}" for i in range(len(low.consts))]
        return _function(name, params, ["for i in range(theta.size):"] + ["    " + x for x in lines])

    @property
    def kernel_name(self) -> str:
        """A name for the compiled kernel that changes whenever its code does (numba caches by name)."""
        digest = hashlib.sha1(self.kernel_source("k").encode()).hexdigest()[:12]
        return f"{self.rule.name}_{digest}"

    # ----- describe ---------------------------------------------------------------------------------
    def equations(self, kw: dict) -> list[str]:
        """The statements this program runs, hyperparameters replaced by their values (``t`` kept)."""
        low, rule = self._low, self.rule
        values = {k: kw[k] for k in rule.scalars if k in kw and k != "t"}
        lines = []
        for target, expr, line in low.taken:
            text = f"{target} = {ast.unparse(_Numbers(low, values).visit(_copy(expr)))}".replace(" ** ", "^")
            for name, shown in rule.symbols.items():
                text = _replace_name(text, name, shown)
            comment = rule.comments.get(line)
            lines.append(f"{text}    # {comment}" if comment else text)
        return lines


def _copy(node):
    return ast.parse(ast.unparse(node), mode="eval").body


def _replace_name(text: str, name: str, shown: str) -> str:
    return re.sub(rf"\b{re.escape(name)}\b", shown, text)


class _Numbers(ast.NodeTransformer):
    """Fold scalar subexpressions without ``t`` into numbers; resolve ``a if flag else b``."""

    def __init__(self, low: _Lowering, values: dict):
        self.low, self.values = low, values

    def _value(self, node):
        return eval(ast.unparse(node), {"__builtins__": {}}, dict(self.values))

    def visit(self, node):
        if not isinstance(node, ast.expr):
            return node
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        if self.low.scalar(node) and names <= set(self.values):
            return ast.Name(_fmt(self._value(node)))
        if isinstance(node, ast.IfExp):
            return self.visit(node.body if self._value(node.test) else node.orelse)
        return self.generic_visit(node)


#: What a rule calls, so that it also runs as plain NumPy code when called directly.
sqrt, maximum = np.sqrt, np.maximum
