"""Code generation: kernels -> module source, through jinja2 templates and sympy printers."""
