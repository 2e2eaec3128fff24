"""CUDA glue: a repository rule that finds the toolkit and a rule family that compiles .cu files.

`bazel build --config=cuda` sets `--define=strata_cuda=true`; targets select on
//third_party:cuda_enabled to add their CUDA objects and the runtime libraries. The default
build never runs nvcc and links nothing from the toolkit.

The toolkit is located through CUDA_HOME (default /usr/local/cuda) when the repository is
first configured; `--config=cuda` passes CUDA_HOME through as a repository environment variable so
changing it reconfigures.
"""

def cuda_enabled_setting():
    native.config_setting(
        name = "cuda_enabled",
        define_values = {"strata_cuda": "true"},
        visibility = ["//visibility:public"],
    )

_BUILD_TEMPLATE = """
package(default_visibility = ["//visibility:public"])

# Host link flags for the CUDA runtime, cuBLAS and NCCL found under {cuda_home}.
cc_library(
    name = "cuda_runtime",
    linkopts = [{linkopts}],
)

sh_binary(
    name = "nvcc",
    srcs = ["nvcc.sh"],
)
"""

def _cuda_configure_impl(ctx):
    cuda_home = ctx.os.environ.get("CUDA_HOME", "/usr/local/cuda").rstrip("/")
    nvcc = ctx.path(cuda_home + "/bin/nvcc")
    if nvcc.exists:
        script = "#!/bin/sh\nexec \"{}\" \"$@\"\n".format(nvcc)
    else:
        script = ("#!/bin/sh\necho \"nvcc not found at {}: install the CUDA toolkit or " +
                  "set CUDA_HOME\" >&2\nexit 1\n").format(nvcc)
    ctx.file("nvcc.sh", script, executable = True)
    flags = []
    for sub in ["lib64", "lib", "targets/x86_64-linux/lib"]:
        if ctx.path(cuda_home + "/" + sub).exists:
            flags.append("-L{}/{}".format(cuda_home, sub))
            flags.append("-Wl,-rpath,{}/{}".format(cuda_home, sub))
    flags += ["-lcudart", "-lcublas", "-lnccl", "-ldl"]
    ctx.file("WORKSPACE", "workspace(name = \"{}\")\n".format(ctx.name))
    ctx.file("BUILD.bazel", _BUILD_TEMPLATE.format(
        cuda_home = cuda_home,
        linkopts = ", ".join(["\"{}\"".format(f) for f in flags]),
    ))

cuda_configure = repository_rule(
    implementation = _cuda_configure_impl,
    environ = ["CUDA_HOME"],
    local = True,
)

# sm_90 machine code plus compute_90 PTX so newer GPUs can JIT the kernels.
_NVCC_ARCH_FLAGS = "-gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90"

def cuda_objects(name, srcs, hdrs = [], copts = []):
    """Compiles each .cu in `srcs` with nvcc into a position-independent object.

    Produces the filegroup `name` holding the objects; put it in a cc_library's srcs under
    select(//third_party:cuda_enabled). Headers in `hdrs` must not need CUDA headers when
    included from host C++ compiled by gcc.
    """
    objs = []
    for src in srcs:
        obj = src.replace(".cu", ".cu.pic.o")
        native.genrule(
            name = name + "_" + src.replace("/", "_").replace(".", "_"),
            srcs = [src] + hdrs,
            outs = [obj],
            tools = ["@local_cuda//:nvcc"],
            cmd = ("$(location @local_cuda//:nvcc) -std=c++17 -O3 {arch} " +
                   "-Xcompiler -fPIC -Xcompiler -Wall -Werror all-warnings -I. -I$(GENDIR) {copts} " +
                   "-c $(location {src}) -o $@").format(
                arch = _NVCC_ARCH_FLAGS,
                copts = " ".join(copts),
                src = src,
            ),
            message = "nvcc " + src,
        )
        objs.append(obj)
    native.filegroup(name = name, srcs = objs)
