"""A parser for the TTIR text that stock Triton prints (MLIR's custom assembly of tt, arith, math, scf).

Triton's Python bindings expose too little of the IR to walk it (few attributes, no types), so the
printed text is the interface. The parser is generic where MLIR is (results, operands, attribute
dictionaries, trailing type signatures, regions) and names the few ops whose syntax is special.
Source locations (`loc(#locN)`) are kept so errors can name the user's kernel line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

ELEMENT_TYPES = {
    "f32": "f32", "f16": "f16", "bf16": "bf16", "f64": "f64", "i1": "i1", "i8": "i8", "i16": "i16",
    "i32": "i32", "i64": "i64", "f8E4M3FN": "f8e4m3", "f8E5M2": "f8e5m2", "f8E4M3FNUZ": "f8e4b8",
    "f8E5M2FNUZ": "f8e5b16", "f8E4M3B11FNUZ": "f8e4b15", "index": "i64",
}


class TTIRParseError(ValueError):
    pass


@dataclass(frozen=True)
class TType:
    """A TTIR type: `shape` is () for scalars; `elem` is an IR scalar type or `ptr<...>`."""
    shape: tuple
    elem: str

    @property
    def numel(self) -> int:
        size = 1
        for d in self.shape:
            size *= d
        return size

    def with_elem(self, elem: str) -> "TType":
        return TType(self.shape, elem)


@dataclass
class Block:
    args: list  # [(name, TType)]
    ops: list
    label: str = "bb0"
    # Further blocks of the same region (unstructured control flow: early returns branch with cf.br).
    successors: list = field(default_factory=list)


@dataclass
class Op:
    name: str
    results: list  # [(name, TType)]
    operands: list  # value names
    attrs: dict
    keywords: list  # bare words before the operands (predicates, atomic kinds, program axis)
    regions: list = field(default_factory=list)
    loc: str | None = None
    text: str = ""


@dataclass
class Function:
    name: str
    args: list
    result_types: list
    body: Block
    public: bool
    loc: str | None = None


@dataclass
class Module:
    functions: dict
    locations: dict  # '#locN' → (file, line) or None

    def source_line(self, loc: str | None, depth: int = 0) -> tuple | None:
        """(file, line) of a location reference or inline location text, following aliases and callsites."""
        if loc is None or depth > 20:
            return None
        if loc.startswith("#"):
            return self.source_line(self.locations.get(loc), depth + 1)
        m = re.match(r'\s*"([^"]*)":(\d+):(\d+)', loc)
        if m:
            return (m.group(1), int(m.group(2)))
        m = re.match(r'\s*callsite\((#\w+) at (#\w+)\)', loc)
        if m:
            return self.source_line(m.group(1), depth + 1) or self.source_line(m.group(2), depth + 1)
        m = re.match(r'\s*"[^"]*"\((#\w+)\)', loc)
        if m:
            return self.source_line(m.group(1), depth + 1)
        return None


# ---- text helpers -------------------------------------------------------------------------------
_OPEN, _CLOSE = "<([{", ">)]}"


def split_top(text: str, sep: str) -> list[str]:
    """Split at `sep` where no bracket or string is open."""
    parts, depth, start, i, in_str = [], 0, 0, 0, False
    while i < len(text):
        c = text[i]
        if c == '"' and (i == 0 or text[i - 1] != "\\"):
            in_str = not in_str
        elif not in_str:
            if c in _OPEN:
                depth += 1
            elif c in _CLOSE and not (c == ">" and i > 0 and text[i - 1] == "-"):
                depth -= 1
            elif depth == 0 and text.startswith(sep, i):
                parts.append(text[start:i])
                start = i + len(sep)
                i += len(sep)
                continue
        i += 1
    parts.append(text[start:])
    return parts


def strip_locs(text: str) -> tuple[str, str | None]:
    """Remove every `loc(...)` and return the text and the last location's content."""
    out, last, i = [], None, 0
    while True:
        j = text.find("loc(", i)
        if j < 0 or (j > 0 and (text[j - 1].isalnum() or text[j - 1] == "_")):
            if j < 0:
                out.append(text[i:])
                break
            out.append(text[i:j + 4])
            i = j + 4
            continue
        out.append(text[i:j])
        depth, k = 0, j + 3
        while k < len(text):
            if text[k] == "(":
                depth += 1
            elif text[k] == ")":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        last = text[j + 4:k]
        i = k + 1
    return "".join(out).rstrip(), last


def parse_type(text: str) -> TType:
    t = text.strip()
    if t.startswith("tensor<"):
        inner = t[len("tensor<"):-1]
        dims = []
        while True:
            m = re.match(r"(\d+)x", inner)
            if not m:
                break
            dims.append(int(m.group(1)))
            inner = inner[m.end():]
        return TType(tuple(dims), parse_type(inner).elem)
    if t.startswith("!tt.ptr<"):
        inner = split_top(t[len("!tt.ptr<"):-1], ",")[0]
        return TType((), f"ptr<{parse_type(inner).elem}>")
    if t in ELEMENT_TYPES:
        return TType((), ELEMENT_TYPES[t])
    raise TTIRParseError(f"unsupported TTIR type {t!r}")


def parse_type_list(text: str) -> list[TType]:
    t = text.strip()
    if t.startswith("(") and t.endswith(")"):
        t = t[1:-1]
    return [parse_type(p) for p in split_top(t, ",") if p.strip()]


def parse_attr_value(v: str):
    v = v.strip()
    if v.startswith('"'):
        return bytes(v[1:-1], "utf-8").decode("unicode_escape")
    if v.startswith("array<"):
        body = v[len("array<"):-1]
        _, _, items = body.partition(":")
        return [int(x) for x in items.split(",") if x.strip()]
    if v in ("true", "false"):
        return v == "true"
    m = re.match(r"^(-?\d+)\s*:\s*\w+$", v)
    if m:
        return int(m.group(1))
    m = re.match(r"^(-?[\d.]+(?:e[+-]?\d+)?)\s*:\s*\w+$", v)
    if m:
        return float(m.group(1))
    return v


def parse_attr_dict(text: str) -> dict:
    attrs = {}
    for item in split_top(text, ","):
        if not item.strip():
            continue
        key, eq, value = item.partition("=")
        attrs[key.strip()] = parse_attr_value(value) if eq else True
    return attrs


_VALUE = re.compile(r"%[\w$.\-]+(?:#\d+)?")


def _result_names(text: str) -> list[str]:
    names = []
    for part in text.split(","):
        part = part.strip()
        m = re.match(r"(%[\w$.\-]+)(?::(\d+))?$", part)
        if not m:
            raise TTIRParseError(f"cannot read results {text!r}")
        if m.group(2):
            names += [f"{m.group(1)}#{i}" for i in range(int(m.group(2)))]
        else:
            names.append(m.group(1))
    return names


# ---- the parser ---------------------------------------------------------------------------------
class Parser:
    def __init__(self, text: str) -> None:
        self.locations: dict = {}
        self.lines: list[str] = []
        for raw in text.splitlines():
            line = raw.strip()
            m = re.match(r"^(#loc\d*) = loc\((.*)\)$", line)
            if m:
                self.locations[m.group(1)] = m.group(2)
            elif line:
                self.lines.append(line)
        self.pos = 0

    def parse(self) -> Module:
        functions = {}
        while self.pos < len(self.lines):
            line, _ = strip_locs(self.lines[self.pos])
            self.pos += 1
            if line.startswith("tt.func"):
                fn = self.parse_function(self.lines[self.pos - 1])
                functions[fn.name] = fn
        return Module(functions, self.locations)

    def parse_function(self, header: str) -> Function:
        text, loc = strip_locs(header)
        m = re.match(r"tt\.func\s+(public|private)?\s*@(\"[^\"]*\"|[\w$.]+)\(", text)
        if not m:
            raise TTIRParseError(f"cannot read function header {text!r}")
        depth, close = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[close], 0)
            close += 1
        arg_text, tail = text[m.end():close - 1], text[close:]
        rm = re.match(r"\s*(?:->\s*(\(.*?\)|[^\s{]+))?(?:\s+attributes\s*\{.*\})?\s*\{$", tail)
        if not rm:
            raise TTIRParseError(f"cannot read function header {text!r}")
        args = []
        for part in split_top(arg_text, ","):
            if not part.strip():
                continue
            name, _, rest = part.partition(":")
            ty = rest.strip()
            if "{" in ty:
                ty = ty[:ty.index("{")]
            args.append((name.strip(), parse_type(ty)))
        results = parse_type_list(rm.group(1)) if rm.group(1) else []
        body, _ = self.parse_region_body(block_args=args)
        return Function(m.group(2).strip('"'), args, results, body, m.group(1) != "private", loc)

    def parse_region_body(self, block_args: list | None = None) -> tuple[Block, str]:
        """Parse ops until the closing brace; return the block and the closing line's text after `}`."""
        first = block = Block(list(block_args or []), [])
        while self.pos < len(self.lines):
            raw = self.lines[self.pos]
            self.pos += 1
            if raw.startswith("}"):
                return first, raw[1:].strip()
            if raw.startswith("^"):
                text, _ = strip_locs(raw.split("//")[0])
                m = re.match(r"\^(\w+)(?:\((.*)\))?:$", text.strip())
                if block.ops:
                    block = Block([], [], m.group(1) if m else f"bb{len(first.successors) + 1}")
                    first.successors.append(block)
                elif m:
                    block.label = m.group(1)
                if m and m.group(2):
                    block.args = [(p.split(":")[0].strip(), parse_type(p.split(":", 1)[1]))
                                  for p in split_top(m.group(2), ",")]
                continue
            block.ops.append(self.parse_op(raw))
        raise TTIRParseError("unterminated region")

    def parse_op(self, raw: str) -> Op:
        text, loc = strip_locs(raw)
        results = []
        m = re.match(r"^((?:%[\w$.\-]+(?::\d+)?)(?:\s*,\s*%[\w$.\-]+(?::\d+)?)*)\s*=\s*(.*)$", text)
        if m and not text.startswith(('"', "tt.", "scf.", "arith.", "math.")):
            results, text = _result_names(m.group(1)), m.group(2)
        m = re.match(r'^"?([\w.]+)"?(.*)$', text)
        if not m:
            raise TTIRParseError(f"cannot read operation {text!r}")
        name, rest = m.group(1), m.group(2).strip()
        op = Op(name, [], [], {}, [], [], loc, raw.strip())
        special = _SPECIAL.get(name)
        if special is not None:
            special(self, op, rest, results)
        else:
            self.generic(op, rest, results)
        return op

    # -- generic form: keywords operands {attrs} : signature ----
    def generic(self, op: Op, rest: str, results: list) -> None:
        regions_tail = ""
        if rest.endswith("({"):  # generic form with regions, e.g. "tt.reduce"(%x) <{axis = 0}> ({
            rest = rest[:-2].strip()
            while True:
                body, tail = self.parse_region_body()
                op.regions.append(body)
                if tail.startswith("}, {") or tail.startswith(", {"):
                    continue
                regions_tail, tail_loc = strip_locs(tail)
                op.loc = tail_loc or op.loc
                break
            rest = rest + " " + regions_tail.lstrip(")")
        parts = split_top(rest, " : ")
        head, sig = (" : ".join(parts[:-1]), parts[-1]) if len(parts) > 1 else (rest, "")
        for attr_text in re.findall(r"<?\{(.*?)\}>?", head):
            op.attrs.update(parse_attr_dict(attr_text))
        head_wo_attrs = re.sub(r"<?\{.*?\}>?", "", head)
        for kv in re.findall(r"(\w+)\s*=\s*(\w+)", head_wo_attrs):
            op.attrs[kv[0]] = kv[1]
        head_wo_attrs = re.sub(r"\w+\s*=\s*\w+", "", head_wo_attrs)
        first_operand = head_wo_attrs.find("%")
        keyword_text = head_wo_attrs if first_operand < 0 else head_wo_attrs[:first_operand]
        op.keywords = [k for k in re.split(r"[\s,()]+", keyword_text) if k]
        op.operands = _VALUE.findall(head_wo_attrs)
        op.attrs["signature"] = sig
        types = result_types(op.name, sig, len(results))
        op.results = list(zip(results, types))
        if len(types) < len(results):
            raise TTIRParseError(f"cannot infer the result types of {op.name}: {op.text}")


def result_types(name: str, sig: str, count: int) -> list[TType]:
    if count == 0:
        return []
    arrow = split_top(sig, "->")
    if len(arrow) > 1:
        types = parse_type_list(arrow[-1])
        return types * count if len(types) == 1 and count > 1 else types
    to = split_top(sig, " to ")
    if len(to) > 1:
        return [parse_type(to[-1])]
    types = [parse_type(t) for t in split_top(sig, ",") if t.strip()]
    if name in ("arith.cmpi", "arith.cmpf"):
        return [types[0].with_elem("i1")]
    if name == "tt.load":
        return [types[0].with_elem(types[0].elem[4:-1])]
    if name in ("tt.addptr",):
        return [types[0]]
    return [types[-1]] * count


def _parse_for(self: Parser, op: Op, rest: str, results: list) -> None:
    rest = rest.rstrip("{").strip()
    m = re.match(r"(%[\w$.\-]+)\s*=\s*(%\S+)\s+to\s+(%\S+)\s+step\s+(%\S+)\s*(.*)$", rest)
    if not m:
        raise TTIRParseError(f"cannot read scf.for {rest!r}")
    iv, lb, ub, step, tail = m.groups()
    iter_names, inits, iter_types = [], [], []
    im = re.search(r"iter_args\((.*?)\)\s*->\s*\((.*)\)\s*:\s*(\w+)\s*$", tail) or \
        re.search(r"iter_args\((.*?)\)\s*->\s*(.*?)\s*:\s*(\w+)\s*$", tail)
    iv_type = parse_type(re.search(r":\s*(\w+)\s*$", tail).group(1)) if re.search(r":\s*(\w+)\s*$", tail) else TType((), "i32")
    if im:
        for pair in split_top(im.group(1), ","):
            a, _, b = pair.partition("=")
            iter_names.append(a.strip())
            inits.append(b.strip())
        iter_types = parse_type_list(im.group(2))
        iv_type = parse_type(im.group(3))
    op.operands = [lb, ub, step] + inits
    op.results = list(zip(results, iter_types))
    body, _ = self.parse_region_body([(iv, iv_type)] + list(zip(iter_names, iter_types)))
    op.regions = [body]


def _parse_if(self: Parser, op: Op, rest: str, results: list) -> None:
    rest = rest.rstrip("{").strip()
    cond, _, types = rest.partition("->")
    op.operands = _VALUE.findall(cond)
    op.results = list(zip(results, parse_type_list(types) if types.strip() else []))
    then, tail = self.parse_region_body()
    op.regions = [then]
    if tail.startswith("else"):
        orelse, _ = self.parse_region_body()
        op.regions.append(orelse)


def _parse_while(self: Parser, op: Op, rest: str, results: list) -> None:
    rest = rest.rstrip("{").strip()
    m = re.match(r"(?:\((.*?)\))?\s*:\s*(.*?)\s*->\s*(.*)$", rest)
    if not m:
        raise TTIRParseError(f"cannot read scf.while {rest!r}")
    names, inits = [], []
    for pair in split_top(m.group(1) or "", ","):
        if pair.strip():
            a, _, b = pair.partition("=")
            names.append(a.strip())
            inits.append(b.strip())
    arg_types, res_types = parse_type_list(m.group(2)), parse_type_list(m.group(3))
    op.operands = inits
    op.results = list(zip(results, res_types))
    before, tail = self.parse_region_body(list(zip(names, arg_types)))
    after, _ = self.parse_region_body()
    op.regions = [before, after]
    op.attrs["after_types"] = res_types


def _parse_print(self: Parser, op: Op, rest: str, results: list) -> None:
    m = re.match(r'"((?:[^"\\]|\\.)*)"\s*(\{.*?\})?\s*(?::\s*(.*))?$', rest)
    if not m:
        raise TTIRParseError(f"cannot read tt.print {rest!r}")
    op.attrs["prefix"] = bytes(m.group(1), "utf-8").decode("unicode_escape")
    if m.group(2):
        op.attrs.update(parse_attr_dict(m.group(2)[1:-1]))
    if m.group(3):
        values, _, types = m.group(3).rpartition(" : ")
        op.operands = _VALUE.findall(values)
        op.attrs["types"] = [parse_type(t) for t in split_top(types, ",")]


def _parse_assert(self: Parser, op: Op, rest: str, results: list) -> None:
    m = re.match(r'(%\S+?),\s*"((?:[^"\\]|\\.)*)"\s*:\s*(.*)$', rest)
    if not m:
        raise TTIRParseError(f"cannot read tt.assert {rest!r}")
    op.operands = [m.group(1)]
    op.attrs["message"] = bytes(m.group(2), "utf-8").decode("unicode_escape")
    op.attrs["type"] = parse_type(m.group(3))


def _parse_constant(self: Parser, op: Op, rest: str, results: list) -> None:
    value, _, ty = rest.rpartition(" : ")
    if not value:
        value, ty = rest, ("i1" if rest in ("true", "false") else "i64")
    op.attrs["value"] = value.strip()
    op.results = [(results[0], parse_type(ty))]


def _parse_branch(self: Parser, op: Op, rest: str, results: list) -> None:
    """cf.br ^bb1(%a : f32) / cf.cond_br %c, ^bb1, ^bb2(%b : f32): targets with their operands."""
    targets = []
    for m in re.finditer(r"\^(\w+)(?:\(([^)]*)\))?", rest):
        values = _VALUE.findall((m.group(2) or "").split(":")[0])
        targets.append((m.group(1), values))
    head = rest.split("^")[0]
    op.operands = _VALUE.findall(head) + [v for _, values in targets for v in values]
    op.attrs["targets"] = targets
    op.attrs["condition"] = bool(_VALUE.findall(head))


_SPECIAL = {"cf.br": _parse_branch, "cf.cond_br": _parse_branch, "scf.for": _parse_for, "scf.if": _parse_if,
            "scf.while": _parse_while, "tt.print": _parse_print,
            "tt.assert": _parse_assert, "arith.constant": _parse_constant}


def parse_ttir(text: str) -> Module:
    return Parser(text).parse()
