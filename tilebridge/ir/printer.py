"""A readable text form of the loop IR, for dumps and the `tbir` stage of the Triton pipeline."""
from __future__ import annotations

from tilebridge.ir import nodes as n


def expr_text(e) -> str:
    match e:
        case n.Const():
            return f"{e.value!r}:{e.dtype}"
        case n.Var():
            return e.name
        case n.BufRead():
            return f"{e.buffer.name}[{expr_text(e.index)}]"
        case n.MemRead():
            return f"*({expr_text(e.pointer)})"
        case n.Unary():
            return f"{e.op}({expr_text(e.a)})"
        case n.Binary():
            return f"({expr_text(e.a)} {e.op} {expr_text(e.b)})"
        case n.Call():
            return f"{e.fn}({', '.join(expr_text(a) for a in e.args)})"
        case n.Cast():
            return f"{e.dtype}{'.' + e.mode if e.mode else ''}({expr_text(e.a)})"
        case n.Bitcast():
            return f"bitcast<{e.dtype}>({expr_text(e.a)})"
        case n.Select():
            return f"({expr_text(e.cond)} ? {expr_text(e.a)} : {expr_text(e.b)})"
    raise TypeError(f"not an IR expression: {e!r}")


def stmt_lines(s, depth: int) -> list[str]:
    pad = "  " * depth
    match s:
        case n.Declare():
            return [f"{pad}{s.var.dtype} {s.var.name}" + (f" = {expr_text(s.init)}" if s.init is not None else "")]
        case n.Assign():
            return [f"{pad}{s.var.name} = {expr_text(s.value)}"]
        case n.BufWrite():
            return [f"{pad}{s.buffer.name}[{expr_text(s.index)}] = {expr_text(s.value)}"]
        case n.MemWrite():
            return [f"{pad}*({expr_text(s.pointer)}) = {expr_text(s.value)}"]
        case n.If():
            lines = [f"{pad}if {expr_text(s.cond)}:"] + block_lines(s.then, depth + 1)
            if s.orelse:
                lines += [f"{pad}else:"] + block_lines(s.orelse, depth + 1)
            return lines
        case n.For():
            kind = "for.simd" if s.vectorize else "for"
            head = f"{pad}{kind} {s.var.name} in range({expr_text(s.start)}, {expr_text(s.stop)}, {expr_text(s.step)}):"
            return [head] + block_lines(s.body, depth + 1)
        case n.While():
            return [f"{pad}while:"] + block_lines(s.body, depth + 1)
        case n.Break():
            return [f"{pad}break"]
        case n.Label():
            return [f"{pad}{s.name}:"]
        case n.Goto():
            return [f"{pad}goto {s.name}"]
        case n.Atomic():
            res = f"{s.result.name} = " if s.result is not None else ""
            cmp = f", {expr_text(s.compare)}" if s.compare is not None else ""
            return [f"{pad}{res}atomic_{s.op}({expr_text(s.pointer)}{cmp}, {expr_text(s.value)})"]
        case n.Print():
            return [f"{pad}print {s.prefix!r} " + ", ".join(expr_text(v) for v in s.values)]
        case n.Assert():
            return [f"{pad}assert {expr_text(s.cond)}, {s.message!r}"]
        case n.Intrinsic():
            args = ", ".join(a.name if isinstance(a, n.Buffer) else expr_text(a) for a in s.args)
            return [f"{pad}{s.name}({args})"]
        case n.Comment():
            return [f"{pad}# {s.text}"]
    raise TypeError(f"not an IR statement: {s!r}")


def block_lines(body: list, depth: int) -> list[str]:
    return [line for s in body for line in stmt_lines(s, depth)]


def print_kernel(kernel: n.Kernel) -> str:
    params = ", ".join(f"{p.name}: {p.dtype}" for p in kernel.params)
    lines = [f"kernel {kernel.name}({params})"]
    lines += [f"  buffer {b.name}: {b.dtype}[{b.size}]" for b in kernel.buffers]
    lines += block_lines(kernel.body, 1)
    return "\n".join(lines) + "\n"
