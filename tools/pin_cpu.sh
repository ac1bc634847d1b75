# Source it (`. tools/pin_cpu.sh`) before `dvc repro`: PyTorch, MKL, oneDNN and numpy then run the AVX2 kernels on
# any x86-64 CPU, the kernels of the CPU that trained the shipped artifacts (an AMD EPYC with AVX2 only,
# metrics/provenance/). fp32 results differ between CPU kinds because the libraries dispatch to different SIMD kernels
# (AVX-512 sums and GEMM blocks round differently, and pick differently among ties), not because the arithmetic
# differs; with every library held to AVX2 an AMD EPYC with AVX-512 regenerated the shipped run's activation stores
# and metrics byte for byte (docs/REPRODUCTION.md). On an AVX2-only CPU it changes nothing; on an AVX-512 CPU
# compute is somewhat slower. DVC does not track the environment: unset these to use a CPU's own kernels.
export ATEN_CPU_CAPABILITY=avx2                                  # PyTorch's vectorised kernels (sums, softmax, ...)
export MKL_ENABLE_INSTRUCTIONS=AVX2                              # MKL's GEMM: torch's matmul on the CPU
export ONEDNN_MAX_CPU_ISA=AVX2                                   # oneDNN's kernels
export NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"   # numpy's AVX-512 loops (absent ones are ignored)
