"""Compile a generated Triton module's kernels ahead of time for a named GPU, with no GPU.

``triton.compile(..., target=GPUTarget("cuda", 90, 32))`` builds PTX and a cubin;
the ``cuobjdump`` bundled in the triton wheel reads registers, shared memory and
local memory (spills) from the cubin, and its ``-sass`` listing gives the machine
code.  This runs in a separate process without ``TRITON_INTERPRET``, so the kernels
are real ``@triton.jit`` functions whatever the calling process is doing.

Run as ``python -m compiler.aot MODULE.py sm_90`` it prints JSON.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from runtime.errors import GradcError

CONSTEXPRS = {"BLOCK": "BLOCK", "BLOCK_C": "CE_BLOCK_C"}  # untuned: update kernels, classes
WIDE_DEFAULT = False  # 32-bit index arithmetic, as for every tensor of fewer than 2**31 elements
WIDE = ("key", "threshold")
ONE_PASS = {"SPLIT": 1, "FINISH": False}


def _tool(name):
    import triton

    path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name
    if not path.exists():
        raise GradcError(f"{name} not found in the triton wheel ({path})")
    return str(path)


def _signature(fn, pointers, module, tuned, wide=WIDE_DEFAULT):
    signature, constexprs = {}, {}
    for arg in fn.arg_names:
        if arg in tuned or arg in CONSTEXPRS:
            signature[arg] = "constexpr"
            constexprs[arg] = tuned[arg] if arg in tuned else getattr(module, CONSTEXPRS[arg])
        elif arg == "WIDE":
            signature[arg], constexprs[arg] = "constexpr", wide
        elif arg in ONE_PASS:  # a whole-tensor reduction as one program (small tensors)
            signature[arg], constexprs[arg] = "constexpr", ONE_PASS[arg]
        elif arg.endswith("_ptr"):
            signature[arg] = pointers.get(arg, "*fp32")
        else:
            signature[arg] = "i64" if arg in WIDE else "i32"
    return signature, constexprs


def _resources(cubin_path):
    text = subprocess.run([_tool("cuobjdump"), "--dump-resource-usage", cubin_path],
                          capture_output=True, text=True, check=True).stdout
    found = {}
    for key, label in (("REG", "registers"), ("SHARED", "shared"), ("LOCAL", "local"),
                       ("STACK", "stack")):
        match = re.search(rf"\b{key}:(\d+)", text)
        found[label] = int(match.group(1)) if match else None
    return found


def compile_module(path, arch="sm_90", want=("resources",)):
    """Each kernel of the module at ``path`` compiled for ``arch``: a dict name -> results
    (``want``: "resources", "ptx", "sass"; with "wide", the 64-bit-index specialization
    that tensors of 2**31 elements or more launch)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.autotuner import Autotuner

    capability = int(arch.replace("sm_", ""))
    spec = importlib.util.spec_from_file_location("gradc_aot_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = {}
    float_ptr = "*fp64" if "float64" in str(module.DTYPE) else "*fp32"
    # kernels launching the same device kernel (KERNELS' "device") share its compilation
    kernels = [(k["name"], k["device"], k["pointers"], k.get("classes"), k)
               for k in module.KERNELS]
    kernels += [(f"update_{rule}", f"update_{rule}_kernel", {}, None, {})  # pointers: all floats
                for rule in module.OPTIMIZERS]
    done = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, device, pointers, classes, row in kernels:
            if device in done:
                out[name] = dict(done[device])
                continue
            fn = getattr(module, device)
            # an autotuned kernel: every config it may pick; the report keeps the largest use
            configs = fn.configs if isinstance(fn, Autotuner) else [None]
            fn = fn.fn if isinstance(fn, Autotuner) else fn
            pointers = {p: pointers.get(p, float_ptr) for p in fn.arg_names if p.endswith("_ptr")}
            result = None
            for i, config in enumerate(configs):
                # a kernel the host launches with fixed blocks (row-wise): those
                tuned = {**(config.kwargs if config else {}), **row.get("constants", {})}
                options = {"num_warps": config.num_warps, "num_stages": config.num_stages} \
                    if config else {"num_warps": row["num_warps"]} if "num_warps" in row else None
                if classes is not None:  # the chunk of classes the host launches with
                    tuned = {**tuned, "BLOCK_C": min(module.CE_BLOCK_C,
                                                     triton.next_power_of_2(classes))}
                signature, constexprs = _signature(fn, pointers, module, tuned, "wide" in want)
                compiled = triton.compile(ASTSource(fn, signature, constexprs=constexprs),
                                          target=GPUTarget("cuda", capability, 32), options=options)
                cubin = Path(tmp) / f"{name}_{i}.cubin"
                cubin.write_bytes(compiled.asm["cubin"])
                found = _resources(str(cubin))
                if result is None:  # the first config's code is the one shown
                    result = dict(found)
                    if "ptx" in want:
                        result["ptx"] = compiled.asm["ptx"]
                    if "sass" in want:
                        result["sass"] = subprocess.run(
                            [_tool("cuobjdump"), "-sass", str(cubin)],
                            capture_output=True, text=True, check=True).stdout
                for key in ("registers", "shared", "local", "stack"):
                    if found[key] is not None:
                        result[key] = max(result[key] or 0, found[key])
            result["configs"] = len(configs)
            out[name] = done[device] = result
    return out


def compile_in_subprocess(path, arch="sm_90", want=("resources",)):
    """``compile_module`` in a fresh process without TRITON_INTERPRET; a GradcError on failure."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                         env.get("PYTHONPATH", "")])
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    proc = subprocess.run([sys.executable, "-m", "compiler.aot", str(path), arch, ",".join(want)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise GradcError(f"compiling for {arch} failed: {last}")
    return json.loads(proc.stdout)


if __name__ == "__main__":
    print(json.dumps(compile_module(sys.argv[1], sys.argv[2], tuple(sys.argv[3].split(",")))))
