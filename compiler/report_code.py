"""Source text for ``gradc report``: each kernel's code cut out of a generated module, and
Python lines split into highlighted tokens.

Kernels are read from the module's text (``ast``), never imported, so the Triton source
shows on a machine without triton.  A Triton kernel is its device function (with its
decorators and the comment above them) followed by its host wrapper, as
``runtime.program.kernel_source`` gives it.

>>> lines = highlight("x = 1  # one")
>>> [(kind, text) for kind, text in lines[0] if kind]
[('num', '1'), ('com', '# one')]
"""
import ast
import io
import keyword
import re
import tokenize

PROVENANCE = re.compile(r"^\s*#\s+%(\d+)\s")  # a kernel header's "#   %5  tanh  (B, 32)  m.py:7"


def _functions(tree):
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def module_table(text, name):
    """The literal table ``name`` (``KERNELS``, ``PARAMS``, ...) of a generated module's text."""
    return _table(ast.parse(text), name)


def _table(tree, name):
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            return ast.literal_eval(node.value)
    return None


def _segment(lines, fn):
    """The lines of function ``fn``: its decorators and the comment lines right above them."""
    start = min([fn.lineno] + [d.lineno for d in fn.decorator_list]) - 1
    while start > 0 and lines[start - 1].startswith("#"):
        start -= 1
    return "\n".join(lines[start:fn.end_lineno])


def kernel_sources(text, names, share=False):
    """``{name: source}`` for the kernels ``names`` of the module ``text``; a kernel with a
    device function (the module's ``KERNELS`` row names it) gets it first.  With ``share``,
    a device function that several kernels launch is written out only for the first of
    them; the others name it in a comment (a 10,000-node graph's page stays small)."""
    tree = ast.parse(text)
    lines = text.splitlines()
    functions = _functions(tree)
    rows = {row["name"]: row for row in _table(tree, "KERNELS") or []}
    out, first = {}, {}
    for name in names:
        if name not in functions:
            continue
        parts = []
        device = rows.get(name, {}).get("device", f"{name}_kernel")
        if device in functions:
            if share and device in first:
                parts.append(f"# device kernel {device}: as in {first[device]}")
            else:
                parts.append(_segment(lines, functions[device]))
            first.setdefault(device, name)
        parts.append(_segment(lines, functions[name]))
        out[name] = "\n\n\n".join(parts)
    return out


def _kind(tok):
    if tok.type == tokenize.COMMENT:
        return "com"
    if tok.type == tokenize.STRING:
        return "str"
    if tok.type == tokenize.NUMBER:
        return "num"
    if tok.type == tokenize.NAME and keyword.iskeyword(tok.string):
        return "kw"
    return None


def highlight(text):
    """``text`` as a list of lines, each a list of ``(kind, text)`` pieces: kind ``kw``,
    ``str``, ``num``, ``com`` or ``""`` for plain text.  Text that does not tokenize
    comes back plain."""
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    spans = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            kind = _kind(tok)
            if kind:
                (r0, c0), (r1, c1) = tok.start, tok.end
                spans.append((starts[r0 - 1] + c0, starts[r1 - 1] + c1, kind))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        spans = []
    out, span = [], 0
    for i, line in enumerate(lines):
        begin, end = starts[i], starts[i] + len(line)
        pieces, at = [], begin
        while span < len(spans) and spans[span][0] < end:
            s, e, kind = spans[span]
            s = max(s, begin)
            if s > at:
                pieces.append(("", text[at:s]))
            pieces.append((kind, text[s:min(e, end)]))
            at = min(e, end)
            if e > end:  # a string over several lines goes on in the next line
                break
            span += 1
        if at < end:
            pieces.append(("", text[at:end]))
        out.append(pieces)
    return out


def provenance_node(line):
    """The node index a kernel header's provenance line names, or None."""
    m = PROVENANCE.match(line)
    return int(m.group(1)) if m else None
