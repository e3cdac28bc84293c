"""The Triton compiler backend for the CPU: options, the stage pipeline, and the cache hash.

Stages, in order (each output is cached by triton as `{name}.{stage}`):
  ttir  stock Triton TTIR passes; block pointers are rewritten to pointer arithmetic here
  tbir  tilebridge's loop IR, printed (the TTIR text parsed and lowered)
  c     the C source rendered from the loop IR
  so    the shared library built by the system C compiler
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from types import ModuleType
from typing import Any

from triton._C.libtriton import ir, passes
from triton.backends.compiler import BaseBackend, GPUTarget, Language


@dataclass(frozen=True)
class CpuOptions:
    # Fields triton's frontend and runtime read.
    num_warps: int = 4
    num_ctas: int = 1
    num_stages: int = 1
    warp_size: int = 32
    debug: bool = False
    instrumentation_mode: str = ""
    enable_fp_fusion: bool = True
    launch_cooperative_grid: bool = False
    launch_pdl: bool = False
    extern_libs: Any = None
    sanitize_overflow: bool = False
    supported_fp8_dtypes: tuple = ("fp8e4nv", "fp8e5", "fp8e4b15", "fp8e4b8", "fp8e5b16")
    deprecated_fp8_dot_operand_dtypes: tuple = ()
    default_dot_input_precision: str = "ieee"
    allowed_dot_input_precisions: tuple = ("tf32", "tf32x3", "ieee", "bf16x3", "bf16x6")
    max_num_imprecise_acc_default: int = 0
    arch: str = "native"
    backend_name: str = "cpu"
    # GPU tuning knobs real code passes at launch or in triton.Config: accepted, meaningless here.
    maxnreg: Any = None
    waves_per_eu: int = 0
    matrix_instr_nonkdim: int = 0
    kpack: int = 1
    ptx_version: Any = None
    ptx_options: Any = None
    ir_override: Any = None
    enable_reflect_ftz: bool = True
    schedule_hint: str = "none"
    # CPU options: 0 threads means torch.get_num_threads() at each launch.
    num_threads: int = 0
    # Digest of the replacement sources in TILEBRIDGE_OVERRIDE_DIR: part of the cache key, so a kernel
    # built from a replaced source is never served to a process that did not ask for it.
    override_digest: str = ""

    def hash(self) -> str:
        key = "_".join(f"{name}-{value}" for name, value in sorted(self.__dict__.items()))
        return hashlib.sha256(key.encode()).hexdigest()


def _min_dot_size(lhs_type, rhs_type):
    return (1, 1, 1)


def _convert_custom_types(arg, dst_ty, fp_downcast_rounding=None, _semantic=None):
    """fp8e4b15 conversions, which triton leaves to the target (GPUs use inline assembly).

    The format is carried as i8 in TTIR; decoding and encoding are calls to runtime-header
    helpers, through fp32.
    """
    from triton.language import core
    e4b15 = core.dtype("fp8e4b15")
    if arg.type.scalar == e4b15:
        wide = core.extern_elementwise("", "", [arg], {(e4b15,): ("tb_fp8e4b15_to_fp32", core.float32)},
                                       is_pure=True, _semantic=_semantic)
        return _semantic.cast(wide, dst_ty.scalar)
    rtz = str(fp_downcast_rounding).lower().endswith("rtz")
    wide = _semantic.cast(arg, core.float32)
    symbol = "tb_fp32_to_fp8e4b15_rtz" if rtz else "tb_fp32_to_fp8e4b15"
    return core.extern_elementwise("", "", [wide], {(core.float32,): (symbol, e4b15)}, is_pure=True, _semantic=_semantic)


class CpuBackend(BaseBackend):
    @staticmethod
    def supports_target(target: GPUTarget) -> bool:
        return target.backend == "cpu"

    def __init__(self, target: GPUTarget) -> None:
        super().__init__(target)
        self.binary_ext = "so"
        from tilebridge.frontends.triton.startup import remember_triton_key
        remember_triton_key()

    def hash(self) -> str:
        from tilebridge.toolchain.compiler import toolchain_hash
        return f"tilebridge-{toolchain_hash()}"

    def parse_options(self, options: dict) -> CpuOptions:
        known = {f.name for f in fields(CpuOptions)}
        args = {k: v for k, v in options.items() if k in known and v is not None}
        from tilebridge.toolchain.debug import override_digest
        args["override_digest"] = override_digest()
        if "supported_fp8_dtypes" in args:
            args["supported_fp8_dtypes"] = tuple(sorted(args["supported_fp8_dtypes"]))
        if "extern_libs" in args:
            args["extern_libs"] = tuple(sorted(dict(args["extern_libs"]).items()))
        return CpuOptions(**args)

    def pack_metadata(self, metadata) -> tuple:
        return (metadata.num_warps, metadata.num_ctas, metadata.shared)

    def get_codegen_implementation(self, options) -> dict:
        from triton.language import core
        return {"min_dot_size": _min_dot_size, "convert_custom_types": core.builtin(_convert_custom_types)}

    def get_module_map(self) -> dict[str, ModuleType]:
        # Kernels call libdevice functions by CUDA's symbol names; the C renderer maps each symbol
        # to a C implementation, so the CUDA module's dtype tables serve the CPU unchanged.
        from triton.language.extra.cuda import libdevice
        return {"triton.language.extra.libdevice": libdevice}

    def load_dialects(self, context) -> None:
        pass

    @staticmethod
    def make_ttir(mod, metadata, options):
        pm = ir.pass_manager(mod.context)
        pm.enable_debug()
        passes.common.add_inliner(pm)
        passes.ttir.add_rewrite_tensor_pointer(pm)
        passes.ttir.add_rewrite_tensor_descriptor_to_pointer(pm)
        passes.common.add_canonicalizer(pm)
        passes.ttir.add_combine(pm)
        passes.ttir.add_reorder_broadcast(pm)
        passes.common.add_cse(pm)
        passes.common.add_symbol_dce(pm)
        passes.ttir.add_loop_unroll(pm)
        pm.run(mod, "make_ttir")
        return mod

    @staticmethod
    def make_tbir(mod, metadata, options) -> str:
        from tilebridge.codegen.c import arena_layout
        from tilebridge.frontends.triton.lower import lower_module
        ttir = mod.str()
        text = lower_module(ttir, options)
        metadata["name"] = text.kernel.name
        from tilebridge.toolchain.debug import dump_stage
        dump_stage(text.kernel.name, {"ttir": ttir})
        # A program's tile arena plays the role of shared memory in user-side occupancy arithmetic.
        metadata["shared"] = arena_layout(text.kernel.buffers)[1]
        return text

    @staticmethod
    def make_c(src: str, metadata, options) -> str:
        from tilebridge.codegen.c import render_kernel_text
        from tilebridge.toolchain.debug import dump_stage, override_source
        source = override_source(metadata["name"], "c") or render_kernel_text(src)
        dump_stage(metadata["name"], {"tbir": str(src), "c": source})
        return source

    @staticmethod
    def make_so(src: str, metadata, options) -> bytes:
        from tilebridge.toolchain.compiler import build_shared_library
        return build_shared_library(src, metadata["name"])

    def add_stages(self, stages: dict, options: CpuOptions, language: Language = Language.TRITON) -> None:
        if language != Language.TRITON:
            raise NotImplementedError("tilebridge compiles Triton kernels; Gluon is GPU-specific")
        stages["ttir"] = lambda src, metadata: self.make_ttir(src, metadata, options)
        stages["tbir"] = lambda src, metadata: self.make_tbir(src, metadata, options)
        stages["c"] = lambda src, metadata: self.make_c(src, metadata, options)
        stages["so"] = lambda src, metadata: self.make_so(src, metadata, options)
