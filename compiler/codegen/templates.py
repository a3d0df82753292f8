"""The jinja2 environment over ``templates/``: strict, and errors name the template line."""
import functools

import jinja2

from compiler.config import templates_dir


@functools.lru_cache(maxsize=None)
def environment():
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _raise(template, e):
    line = getattr(e, "lineno", None)
    raise RuntimeError(f"template {template}{':' + str(line) if line else ''}: {e}") from e


def render(template, **context):
    """Render ``templates/<name>``; a template error is re-raised naming the template line."""
    try:
        return environment().get_template(template).render(**context)
    except jinja2.TemplateError as e:
        _raise(template, e)


def render_macro(template, macro, context, *args):
    """Call the macro ``macro`` of ``templates/<template>`` with ``args``, the template's
    variables being ``context`` (a Triton skeleton's ``device`` and ``host`` halves)."""
    try:
        return str(getattr(environment().get_template(template).make_module(context), macro)(*args))
    except jinja2.TemplateError as e:
        _raise(template, e)


def templates_digest():
    """Every template's path and contents, for cache keys."""
    root = templates_dir()
    parts = []
    for path in sorted(root.rglob("*.jinja")):
        parts.append(f"{path.relative_to(root)}\n{path.read_text()}")
    return "\n".join(parts)
