"""Compiles .proto files with the system protoc and grpc_cpp_plugin into a cc_library.

Generated headers sit at the proto's workspace path (proto/strata/v1/job.pb.h) so code
includes them as "proto/strata/v1/job.pb.h". Imports are resolved from the workspace root and
/usr/include (well-known types).
"""

def strata_cc_proto_library(name, srcs, deps = [], grpc = True, visibility = None):
    """cc_library `name` with the messages (and, if `grpc`, the services) of `srcs`.

    `deps` are other strata_cc_proto_library targets whose protos `srcs` import; their .proto
    files must be listed in `proto_deps` through the `<dep>_protos` filegroup.
    """
    outs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
        if grpc:
            outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]
    dep_protos = [d + "_protos" for d in deps]
    native.filegroup(name = name + "_protos", srcs = srcs + dep_protos, visibility = visibility)
    plugin = ""
    if grpc:
        plugin = "--grpc_out=$(GENDIR) --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin "
    native.genrule(
        name = name + "_gen",
        srcs = srcs + dep_protos,
        outs = outs,
        cmd = ("/usr/bin/protoc -I. -I$(GENDIR) -I/usr/include --cpp_out=$(GENDIR) " + plugin +
               " ".join(["$(location {})".format(s) for s in srcs])),
        message = "protoc " + name,
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        # Generated code is not held to the project's warning flags.
        copts = ["-w"],
        deps = deps + ["//third_party:grpc", "//third_party:protobuf"],
        visibility = visibility,
    )
