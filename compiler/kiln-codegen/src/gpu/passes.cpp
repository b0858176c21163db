// passes.cpp - the MLIR passes of Kiln's GPU lowering that upstream MLIR lacks.
//
// They are registered once (kiln_gpu_register_passes) and then used by name in the
// textual pipelines of src/gpu/mod.rs, like any upstream pass, so every pipeline stays
// printable (`kiln compile --print-pipeline`). Each pass is small and does one thing:
//
//   kiln-gpu-constants     constant memref.globals the host code uses -> views of the weights
//                          argument past its end: their bytes are appended to the weights
//                          blob (module attribute `kiln.constants`), which lives on the device
//                          like every weight.
//   kiln-gpu-tile-contractions  each host contraction of f32 values (m, n, k and batch
//                          dimensions of any number; A and B indexed by affine expressions, so
//                          convolutions too) with enough rows and columns
//                          -> one gpu.launch whose blocks stage tiles of A and B in workgroup
//                          memory (gpu.barrier between the stages) and whose threads each
//                          accumulate a micro x micro block of outputs in k order through the
//                          op's own body; grid-stride loops over batches, row and column tiles.
//   kiln-gpu-reduction-trees  each host reduction `combine(x, acc)` (an associative,
//                          commutative arith op) along its inputs' innermost dimension over
//                          at least `min-extent` elements per result -> one block per result:
//                          strided partial values per thread, a tree in workgroup memory,
//                          thread 0 combining the total with the output's initial value;
//                          where the inputs' innermost dimension is the output's instead
//                          (a GEMV's weight [k, n]), blocks of 32 results by slices.
//   kiln-gpu-parallel-first  linalg.generic loops interchanged so that parallel dimensions
//                          lead (one thread per output element of a contraction).
//   kiln-gpu-copies        memref.copy in host code -> linalg.copy (then a parallel loop,
//                          like every other linalg op), because host code never touches
//                          device memory.
//   kiln-gpu-map-loops     every outermost scf.parallel of host code -> one gpu.launch:
//                          the loop's iteration space is linearized and distributed over
//                          blocks of `block-size` threads with a grid-stride loop (at most
//                          `max-grid` blocks), so any rank and any extent maps onto a 1-D
//                          grid with coalesced accesses along the innermost dimension.
//   kiln-gpu-serial        what is left in host code that reads or writes memory (0-d
//                          values, loops over scalars) -> a one-thread gpu.launch, so the
//                          host part of an artifact only computes addresses and launches.
//   kiln-gpu-merge-modules after gpu-kernel-outlining: every kernel into one gpu.module
//                          `kiln_kernels` (one device image per model).
//   kiln-gpu-spirv-abi     spirv.entry_point_abi (workgroup size) from known_block_size,
//                          which convert-gpu-to-spirv needs on every kernel, and the module's
//                          SPIR-V target as `spirv.target_env` (what convert-math-to-spirv
//                          looks up).
//   kiln-gpu-math          polynomial approximations of the math functions a device has no
//                          instruction or library for (`ops` option: erf, tanh, ...), and f64
//                          math computed in f32 where the device has only f32 versions
//                          (`f64-via-f32`: GLSL's transcendental functions); `remf` in `ops`
//                          gives arith.remf the IEEE result x for a finite x and an infinite y,
//                          which x - y * trunc(x / y) (SPIR-V's OpFRem) turns into NaN;
//                          `roundeven` in `ops` computes f64 roundeven through an i64
//                          truncation (lavapipe's f64 RoundEven rounds ties toward zero
//                          on AVX2 machines: 25.5 -> 25).
//   kiln-gpu-loop-results  each result of an scf.for with iter_args -> select(lb < ub,
//                          result, init): MLIR's SCF->SPIR-V conversion keeps a loop's results
//                          in function variables stored only inside the body, so a loop that
//                          runs zero times would yield an unwritten variable instead of its
//                          initial values (an exclusive CumProd's first element read 0).
//   kiln-gpu-llvm-intrinsics  math ops with an LLVM intrinsic (sqrt, floor, ceil, fabs, fma,
//                          copysign, round, roundeven, trunc, min/max) -> llvm.call_intrinsic,
//                          for NVPTX without libdevice: convert-gpu-to-nvvm sends these ops
//                          (and their llvm.intr forms) to libdevice's __nv_* functions, which
//                          would stay unresolved, while the NVPTX back end has instructions.
//   kiln-gpu-demote-f64    f64 inside kernels -> f32, for devices without double precision
//                          (Apple GPUs: MSL has no double): values, constants, local and
//                          argument buffers (internal tensors a lowering keeps in f64, such as
//                          the generic attention's accumulators). The compile refuses f64
//                          tensors at the model's edge for such devices before this runs.
//   kiln-gpu-bf16-storage  bf16 buffers inside kernels -> i16 buffers whose loads and stores
//                          bitcast, so that after arith-emulate-unsupported-floats and
//                          arith-expand{include-bf16} (bf16 arithmetic in f32, conversions as
//                          integer bit operations) no bf16 type is left for SPIR-V, which has
//                          none in Vulkan 1.1.
//   kiln-gpu-spirv-workgroup  workgroup attributions of kernels -> memref.alloc in SPIR-V's
//                          Workgroup storage class (convert-gpu-to-spirv makes those Workgroup
//                          variables and refuses kernels that keep attributions).
//   kiln-gpu-nest-spirv    moves each spirv.module that convert-gpu-to-spirv placed next
//                          to its gpu.module into it, so gpu-module-to-binary serializes it.
//   kiln-gpu-launch-abi    gpu.launch_func -> func.call @kiln_gpu_launch(kernel, grid x/y/z,
//                          args) with one i64 slot per kernel argument, and the kernel table
//                          (name, block size, argument kinds) as the module attribute
//                          `kiln.kernels`; the runtime's device API behind the artifact's
//                          shim executes the launch.
//
// Invariants: no pass here knows a target; target facts arrive as pass options chosen in the
// target's module (src/targets/*.rs).

#include "mlir/CAPI/IR.h"
#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVOps.h"
#include "mlir/Dialect/SPIRV/IR/TargetAndABI.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <cstring>
#include <string>

using namespace mlir;

namespace kiln {
namespace {

/// Whether `op` is inside a gpu.launch, a gpu.module or a spirv.module (device code).
bool inDeviceCode(Operation *op) {
  return op->getParentOfType<gpu::LaunchOp>() || op->getParentOfType<gpu::GPUModuleOp>() ||
         op->getParentOfType<spirv::ModuleOp>();
}

// ------------------------------------------------------------------------------------------
// kiln-gpu-constants
// ------------------------------------------------------------------------------------------

/// Appends the bytes of `value` (its elements in a memref's storage layout: little-endian,
/// whole bytes per element, i1 as one byte) to `out`.
LogicalResult appendBytes(DenseElementsAttr value, std::string &out) {
  Type elem = value.getElementType();
  auto put = [&](const llvm::APInt &bits, unsigned bytes) {
    for (unsigned b = 0; b < bytes; ++b)
      out.push_back((char)bits.extractBitsAsZExtValue(8, 8 * b));
  };
  int64_t n = value.getNumElements();
  if (auto i = dyn_cast<IntegerType>(elem)) {
    unsigned bytes = std::max(1u, (i.getWidth() + 7) / 8);
    auto values = value.getValues<llvm::APInt>();
    for (int64_t k = 0; k < n; ++k)
      put(values[k].zextOrTrunc(bytes * 8), bytes);
    return success();
  }
  if (auto f = dyn_cast<FloatType>(elem)) {
    unsigned bytes = f.getWidth() / 8;
    auto values = value.getValues<llvm::APFloat>();
    for (int64_t k = 0; k < n; ++k)
      put(values[k].bitcastToAPInt(), bytes);
    return success();
  }
  if (elem.isIndex()) {
    auto values = value.getValues<llvm::APInt>();
    for (int64_t k = 0; k < n; ++k)
      put(values[k].sextOrTrunc(64), 8);
    return success();
  }
  return failure();
}

struct ConstantsPass : PassWrapper<ConstantsPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(ConstantsPass)
  StringRef getArgument() const final { return "kiln-gpu-constants"; }
  StringRef getDescription() const final {
    return "Move the constant globals host code uses into the weights, past their end";
  }

  void runOnOperation() override {
    ModuleOp top = getOperation();
    std::string blob;
    // Offset in the blob of each global, placed once.
    llvm::StringMap<int64_t> placed;
    for (func::FuncOp f : top.getOps<func::FuncOp>()) {
      if (f.isExternal())
        continue;
      SmallVector<memref::GetGlobalOp> uses;
      f.walk([&](memref::GetGlobalOp g) {
        if (!inDeviceCode(g))
          uses.push_back(g);
      });
      if (uses.empty())
        continue;
      // The planned lowering's signature: (inputs.., outputs.., weights, workspace).
      if (f.getNumArguments() < 2) {
        f.emitError("GPU lowering: constants in a function without a weights argument");
        return signalPassFailure();
      }
      BlockArgument weights = f.getArgument(f.getNumArguments() - 2);
      auto wty = dyn_cast<MemRefType>(weights.getType());
      if (!wty || wty.getRank() != 1 || !wty.getElementType().isInteger(8) ||
          !wty.hasStaticShape()) {
        f.emitError("GPU lowering: the weights argument is not a static byte buffer");
        return signalPassFailure();
      }
      int64_t base = llvm::alignTo(wty.getDimSize(0), 64);
      for (memref::GetGlobalOp g : uses) {
        auto global = top.lookupSymbol<memref::GlobalOp>(g.getNameAttr());
        auto init = global ? dyn_cast_or_null<DenseElementsAttr>(
                                 global.getInitialValue().value_or(Attribute()))
                           : DenseElementsAttr();
        if (!global || !global.getConstant() || !init) {
          g.emitError("GPU lowering: host code uses a global that is not a constant");
          return signalPassFailure();
        }
        auto it = placed.find(global.getSymName());
        int64_t offset;
        if (it != placed.end()) {
          offset = it->second;
        } else {
          while (blob.size() % 64)
            blob.push_back(0);
          offset = (int64_t)blob.size();
          if (failed(appendBytes(init, blob))) {
            g.emitError("GPU lowering: constant of unsupported element type");
            return signalPassFailure();
          }
          placed[global.getSymName()] = offset;
        }
        OpBuilder b(g);
        Value at = arith::ConstantIndexOp::create(b, g.getLoc(), base + offset);
        auto type = cast<MemRefType>(g.getType());
        if (!type.getLayout().isIdentity()) {
          g.emitError("GPU lowering: constant with a non-identity layout");
          return signalPassFailure();
        }
        Value view = memref::ViewOp::create(b, g.getLoc(), type, weights, at, ValueRange{});
        g.replaceAllUsesWith(view);
        g.erase();
      }
    }
    if (blob.empty())
      return;
    while (blob.size() % 64)
      blob.push_back(0);
    // The weights arguments grow by the blob, so the views stay inside them.
    for (func::FuncOp f : top.getOps<func::FuncOp>()) {
      if (f.isExternal() || f.getNumArguments() < 2)
        continue;
      unsigned index = f.getNumArguments() - 2;
      BlockArgument weights = f.getArgument(index);
      auto wty = dyn_cast<MemRefType>(weights.getType());
      if (!wty || wty.getRank() != 1 || !wty.getElementType().isInteger(8))
        continue;
      int64_t size = llvm::alignTo(wty.getDimSize(0), 64) + (int64_t)blob.size();
      auto grown = MemRefType::get({size}, wty.getElementType());
      weights.setType(grown);
      SmallVector<Type> inputs(f.getArgumentTypes());
      inputs[index] = grown;
      f.setType(FunctionType::get(&getContext(), inputs, f.getResultTypes()));
    }
    top->setAttr("kiln.constants", StringAttr::get(&getContext(), blob));
  }
};

// ------------------------------------------------------------------------------------------
// kiln-gpu-parallel-first
// ------------------------------------------------------------------------------------------

/// Interchanges the loops of every host linalg.generic so that its parallel dimensions come
/// first (in their order), then its reductions. convert-linalg-to-parallel-loops makes only
/// the leading parallel dimensions an scf.parallel, so a contraction written (m, k, n) would
/// otherwise give one thread per row that loops over k and n: far too little parallelism,
/// and loops longer than some drivers run (lavapipe stops a kernel's loops after 65535
/// iterations).
struct ParallelFirstPass : PassWrapper<ParallelFirstPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(ParallelFirstPass)
  StringRef getArgument() const final { return "kiln-gpu-parallel-first"; }
  StringRef getDescription() const final {
    return "Interchange linalg.generic loops so that parallel dimensions lead";
  }
  void runOnOperation() override {
    SmallVector<linalg::GenericOp> ops;
    getOperation()->walk([&](linalg::GenericOp op) {
      if (!inDeviceCode(op))
        ops.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (linalg::GenericOp op : ops) {
      SmallVector<unsigned> order;
      auto iters = op.getIteratorTypesArray();
      for (unsigned d = 0; d < iters.size(); ++d)
        if (iters[d] == utils::IteratorType::parallel)
          order.push_back(d);
      for (unsigned d = 0; d < iters.size(); ++d)
        if (iters[d] != utils::IteratorType::parallel)
          order.push_back(d);
      bool identity = true;
      for (unsigned d = 0; d < order.size(); ++d)
        identity &= order[d] == d;
      if (identity)
        continue;
      rewriter.setInsertionPoint(op);
      if (failed(linalg::interchangeGenericOp(rewriter, op, order))) {
        op.emitError("GPU lowering: cannot interchange the loops of this op");
        return signalPassFailure();
      }
    }
  }
};

/// The iteration space of a host linalg op being rewritten into a kernel: its loop extents
/// (host values, captured by the kernel), the value of each loop dimension at the kernel's
/// current point, and the operand indices there.
struct LoopSpace {
  linalg::LinalgOp op;
  Location loc;
  SmallVector<Value> size;
  SmallVector<Value> dimVal;

  LoopSpace(linalg::LinalgOp op, OpBuilder &b) : op(op), loc(op.getLoc()) {
    for (Range r : op.createLoopRanges(b, loc))
      size.push_back(getValueOrCreateConstantIndexOp(b, loc, r.size));
    dimVal.resize(op.getNumLoops());
  }

  Value constant(OpBuilder &at, int64_t v) const {
    return arith::ConstantIndexOp::create(at, loc, v).getResult();
  }

  /// The number of points of `dims` together.
  Value product(OpBuilder &at, ArrayRef<unsigned> dims) const {
    Value p = constant(at, 1);
    for (unsigned d : dims)
      p = arith::MulIOp::create(at, loc, p, size[d]);
    return p;
  }

  /// Sets the values of `dims` from their linear index (the last dimension fastest).
  void spread(OpBuilder &at, ArrayRef<unsigned> dims, Value linear) {
    for (size_t i = dims.size(); i-- > 0;) {
      if (i == 0) {
        dimVal[dims[i]] = linear;
        break;
      }
      dimVal[dims[i]] = arith::RemUIOp::create(at, loc, linear, size[dims[i]]);
      linear = arith::DivUIOp::create(at, loc, linear, size[dims[i]]);
    }
  }

  /// The indices of operand `o` at the current point: a dimension's value, or an
  /// affine.apply of the dimensions its expression uses (`at` is needed only then).
  SmallVector<Value> indices(OpOperand *o, OpBuilder *at = nullptr) {
    SmallVector<Value> idx;
    AffineMap map = op.getMatchingIndexingMap(o);
    for (AffineExpr e : map.getResults()) {
      if (auto dim = dyn_cast<AffineDimExpr>(e)) {
        idx.push_back(dimVal[dim.getPosition()]);
        continue;
      }
      assert(at && "an affine index needs a builder");
      Value zero = constant(*at, 0);
      SmallVector<Value> operands;
      for (unsigned d = 0; d < map.getNumDims(); ++d)
        operands.push_back(e.isFunctionOfDim(d) ? dimVal[d] : zero);
      auto one = AffineMap::get(map.getNumDims(), 0, e);
      idx.push_back(affine::AffineApplyOp::create(*at, loc, one, operands));
    }
    return idx;
  }
};

/// The host ops of type `OpT` that `match` accepts, with what it found.
template <typename OpT, typename Fn> auto hostOpsMatching(ModuleOp module, Fn match) {
  using Found = typename decltype(match(std::declval<OpT>()))::value_type;
  std::vector<std::pair<OpT, Found>> found;
  module->walk([&](OpT op) {
    if (inDeviceCode(op))
      return;
    if (auto m = match(op))
      found.push_back({op, *m});
  });
  return found;
}

// ------------------------------------------------------------------------------------------
// kiln-gpu-tile-contractions
// ------------------------------------------------------------------------------------------

/// Each host contraction (a linalg op C += A · B over f32 values whose reduction dimensions
/// index both A and B, whose parallel dimensions each index C and A (m), B (n) or both
/// (batch); A and B indexed by any affine expressions: MatMul, Gemm, batched attention
/// products, a [b, s, h] x [h, o] product whose rows are b·s, convolutions, whose rows are
/// the output pixels (n, oh, ow), columns a group's output channels, reduction (c, kh, kw)
/// and input index oh · stride + kh · dilation) whose row and column counts (the products
/// of its m and of its n extents) are unknown or at least `min-extent` -> one gpu.launch of
/// blocks of `threads`² threads, each block computing (threads·micro)² outputs: tiles of A
/// and B of `tile-k` along k are staged in workgroup memory by all threads together, then
/// each thread accumulates its micro × micro outputs (strided by `threads`, so that reads of
/// the B tile and the stores are consecutive across a warp) from the staged tiles. The
/// reduction still runs in k order from C's initial value through the op's own body, so the
/// result equals the serial loop's bit for bit; loads past an edge read a clamped (valid)
/// address and the reduction never reaches them. Grid-stride loops over batch, row and column
/// tiles, so any extent fits the grid limits; the launch is uniform control flow, as
/// gpu.barrier requires.
struct TileContractionsPass : PassWrapper<TileContractionsPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(TileContractionsPass)
  TileContractionsPass() = default;
  TileContractionsPass(const TileContractionsPass &other) : PassWrapper(other) {}
  StringRef getArgument() const final { return "kiln-gpu-tile-contractions"; }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<affine::AffineDialect, gpu::GPUDialect, scf::SCFDialect>();
  }
  StringRef getDescription() const final {
    return "Contractions as kernels with workgroup-memory tiles and per-thread micro-tiles";
  }
  Option<unsigned> threads{*this, "threads", llvm::cl::desc("Threads along m and along n"),
                           llvm::cl::init(16)};
  Option<unsigned> micro{*this, "micro", llvm::cl::desc("Outputs per thread along m and n"),
                         llvm::cl::init(4)};
  Option<unsigned> tileK{*this, "tile-k", llvm::cl::desc("k extent of a staged tile"),
                         llvm::cl::init(16)};
  Option<unsigned> minExtent{*this, "min-extent",
                             llvm::cl::desc("Smallest static m and n extents worth tiling"),
                             llvm::cl::init(16)};
  Option<unsigned> maxGrid{*this, "max-grid",
                           llvm::cl::desc("Most blocks along each grid dimension"),
                           llvm::cl::init(65535)};

  struct Dims {
    SmallVector<unsigned> batch, m, n, k;
  };

  /// The contraction dimensions of `op` if it is tiled, else nothing.
  std::optional<Dims> match(linalg::LinalgOp op) {
    if (!op.hasPureBufferSemantics() || op.getNumDpsInputs() != 2 || op.getNumDpsInits() != 1 ||
        op.hasIndexSemantics())
      return std::nullopt;
    for (OpOperand &o : op->getOpOperands()) {
      auto t = dyn_cast<MemRefType>(o.get().getType());
      if (!t || !t.getElementType().isF32())
        return std::nullopt;
    }
    for (Operation &inner : op.getBlock()->without_terminator())
      if (!isPure(&inner) || inner.getNumRegions() != 0)
        return std::nullopt;
    // The output is indexed by the parallel dimensions, each once; A and B by any affine
    // expressions of the dimensions (a convolution's input by oh * stride + kh * dilation).
    AffineMap aMap = op.getMatchingIndexingMap(op.getDpsInputOperand(0));
    AffineMap bMap = op.getMatchingIndexingMap(op.getDpsInputOperand(1));
    AffineMap cMap = op.getMatchingIndexingMap(op.getDpsInitOperand(0));
    if (!cMap.isProjectedPermutation() || aMap.getNumSymbols() || bMap.getNumSymbols())
      return std::nullopt;
    auto iters = op.getIteratorTypesArray();
    Dims d;
    for (unsigned dim = 0; dim < iters.size(); ++dim) {
      bool inA = aMap.isFunctionOfDim(dim), inB = bMap.isFunctionOfDim(dim);
      bool inC = cMap.isFunctionOfDim(dim);
      if (iters[dim] == utils::IteratorType::reduction) {
        if (!inA || !inB || inC)
          return std::nullopt;
        d.k.push_back(dim);
      } else if (iters[dim] != utils::IteratorType::parallel || !inC) {
        return std::nullopt;
      } else if (inA && inB) {
        d.batch.push_back(dim);
      } else if (inA) {
        d.m.push_back(dim);
      } else if (inB) {
        d.n.push_back(dim);
      } else {
        return std::nullopt;
      }
    }
    if (d.m.empty() || d.n.empty() || d.k.empty())
      return std::nullopt;
    SmallVector<int64_t> sizes = op.getStaticLoopRanges();
    // Rows (columns) are all m (n) dimensions together, the last one fastest.
    auto small = [&](ArrayRef<unsigned> dims) {
      int64_t extent = 1;
      for (unsigned dim : dims) {
        if (ShapedType::isDynamic(sizes[dim]))
          return false;
        extent *= sizes[dim];
      }
      return extent < (int64_t)minExtent;
    };
    if (small(d.m) || small(d.n))
      return std::nullopt;
    return d;
  }

  void runOnOperation() override {
    if (threads == 0 || micro == 0 || tileK == 0 ||
        (tileK * threads * micro) % (threads * threads) != 0) {
      getOperation()->emitError("kiln-gpu-tile-contractions: the tile of tile-k x threads·micro "
                                "must split evenly over threads² threads");
      return signalPassFailure();
    }
    auto ops = hostOpsMatching<linalg::LinalgOp>(getOperation(),
                                                 [&](linalg::LinalgOp op) { return match(op); });
    for (auto &[op, d] : ops)
      tile(op, d);
  }

  void tile(linalg::LinalgOp op, const Dims &d) {
    Location loc = op.getLoc();
    OpBuilder b(op);
    LoopSpace space(op, b);
    auto cst = [&](OpBuilder &at, int64_t v) { return space.constant(at, v); };
    const int64_t T = threads, U = micro, BK = tileK, BMN = T * U;
    SmallVector<Value> &size = space.size;
    Value batches = space.product(b, d.batch), rowsN = space.product(b, d.m),
          colsN = space.product(b, d.n);
    Value depth = space.product(b, d.k);
    Value mTiles = arith::CeilDivUIOp::create(b, loc, rowsN, cst(b, BMN));
    Value nTiles = arith::CeilDivUIOp::create(b, loc, colsN, cst(b, BMN));
    auto gridOf = [&](Value n) {
      Value g = arith::MinUIOp::create(b, loc, n, cst(b, maxGrid));
      return arith::MaxUIOp::create(b, loc, g, cst(b, 1)).getResult();
    };
    Value gx = gridOf(nTiles), gy = gridOf(mTiles), gz = gridOf(batches);
    Value one = cst(b, 1);
    MLIRContext *ctx = &getContext();
    auto wg = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
    Type f32 = b.getF32Type();
    auto tileType = MemRefType::get({BK, BMN}, f32, MemRefLayoutAttrInterface{}, wg);
    auto launch = gpu::LaunchOp::create(b, loc, gx, gy, gz, cst(b, T * T), one, one, nullptr,
                                        nullptr, ValueRange{}, TypeRange{tileType, tileType});
    Value aTile = launch.getWorkgroupAttributions()[0];
    Value bTile = launch.getWorkgroupAttributions()[1];
    Block &body = launch.getBody().front();
    OpBuilder k = OpBuilder::atBlockEnd(&body);
    auto kc = [&](int64_t v) { return cst(k, v); };
    Value tid = launch.getThreadIds().x;
    Value tcol = arith::RemUIOp::create(k, loc, tid, kc(T));
    Value trow = arith::DivUIOp::create(k, loc, tid, kc(T));
    Value c0 = kc(0), c1 = kc(1);
    Value mMax = arith::SubIOp::create(k, loc, rowsN, c1);
    Value nMax = arith::SubIOp::create(k, loc, colsN, c1);
    Value kMax = arith::SubIOp::create(k, loc, depth, c1);
    auto bz = scf::ForOp::create(k, loc, launch.getBlockIds().z, batches, gz);
    gpu::TerminatorOp::create(k, loc);

    OpBuilder bb = OpBuilder::atBlockBegin(bz.getBody());
    // The batch indices of this iteration (the last batch dimension varies fastest).
    SmallVector<Value> &dimVal = space.dimVal;
    auto spread = [&](OpBuilder &at, ArrayRef<unsigned> dims, Value linear) {
      space.spread(at, dims, linear);
    };
    spread(bb, d.batch, bz.getInductionVar());
    auto by = scf::ForOp::create(bb, loc, launch.getBlockIds().y, mTiles, gy);
    OpBuilder yb = OpBuilder::atBlockBegin(by.getBody());
    auto bx = scf::ForOp::create(yb, loc, launch.getBlockIds().x, nTiles, gx);
    OpBuilder xb = OpBuilder::atBlockBegin(bx.getBody());
    auto mul = [&](OpBuilder &at, Value x, int64_t c) {
      return arith::MulIOp::create(at, loc, x, cst(at, c)).getResult();
    };
    auto add = [&](OpBuilder &at, Value x, Value y) {
      return arith::AddIOp::create(at, loc, x, y).getResult();
    };
    auto minu = [&](OpBuilder &at, Value x, Value y) {
      return arith::MinUIOp::create(at, loc, x, y).getResult();
    };
    auto indices = [&](OpOperand *o, OpBuilder &at) { return space.indices(o, &at); };
    Value m0 = mul(xb, by.getInductionVar(), BMN);
    Value n0 = mul(xb, bx.getInductionVar(), BMN);
    SmallVector<Value> rows, cols;
    for (int64_t i = 0; i < U; ++i) {
      rows.push_back(add(xb, m0, add(xb, trow, cst(xb, T * i))));
      cols.push_back(add(xb, n0, add(xb, tcol, cst(xb, T * i))));
    }
    OpOperand *aOp = op.getDpsInputOperand(0), *bOp = op.getDpsInputOperand(1);
    OpOperand *cOp = op.getDpsInitOperand(0);
    // The initial values of this thread's outputs (clamped addresses at the edges).
    SmallVector<Value> init;
    for (int64_t i = 0; i < U; ++i)
      for (int64_t j = 0; j < U; ++j) {
        spread(xb, d.m, minu(xb, rows[i], mMax));
        spread(xb, d.n, minu(xb, cols[j], nMax));
        init.push_back(memref::LoadOp::create(xb, loc, cOp->get(), indices(cOp, xb)));
      }
    auto kLoop = scf::ForOp::create(xb, loc, c0, depth, cst(xb, BK), init);
    OpBuilder lb = OpBuilder::atBlockBegin(kLoop.getBody());
    Value k0 = kLoop.getInductionVar();
    // Stage the tiles: element e of a tile is loaded by thread e mod T², consecutive threads
    // walking A's k and B's n.
    const int64_t perThread = BK * BMN / (T * T);
    for (int64_t r = 0; r < perThread; ++r) {
      Value e = add(lb, tid, cst(lb, r * T * T));
      Value kk = arith::RemUIOp::create(lb, loc, e, cst(lb, BK));
      Value mm = arith::DivUIOp::create(lb, loc, e, cst(lb, BK));
      spread(lb, d.m, minu(lb, add(lb, m0, mm), mMax));
      spread(lb, d.k, minu(lb, add(lb, k0, kk), kMax));
      Value a = memref::LoadOp::create(lb, loc, aOp->get(), indices(aOp, lb));
      memref::StoreOp::create(lb, loc, a, aTile, ValueRange{kk, mm});
      Value nn = arith::RemUIOp::create(lb, loc, e, cst(lb, BMN));
      Value kb = arith::DivUIOp::create(lb, loc, e, cst(lb, BMN));
      spread(lb, d.n, minu(lb, add(lb, n0, nn), nMax));
      spread(lb, d.k, minu(lb, add(lb, k0, kb), kMax));
      Value v = memref::LoadOp::create(lb, loc, bOp->get(), indices(bOp, lb));
      memref::StoreOp::create(lb, loc, v, bTile, ValueRange{kb, nn});
    }
    gpu::BarrierOp::create(lb, loc);
    Value left = arith::SubIOp::create(lb, loc, depth, k0);
    Value kn = minu(lb, left, cst(lb, BK));
    auto inner = scf::ForOp::create(lb, loc, c0, kn, cst(lb, 1), kLoop.getRegionIterArgs());
    {
      OpBuilder ib = OpBuilder::atBlockBegin(inner.getBody());
      Value kk = inner.getInductionVar();
      SmallVector<Value> as, bs;
      for (int64_t i = 0; i < U; ++i) {
        as.push_back(memref::LoadOp::create(ib, loc, aTile,
                                            ValueRange{kk, add(ib, trow, cst(ib, T * i))}));
        bs.push_back(memref::LoadOp::create(ib, loc, bTile,
                                            ValueRange{kk, add(ib, tcol, cst(ib, T * i))}));
      }
      Block *payload = op.getBlock();
      auto yield = cast<linalg::YieldOp>(payload->getTerminator());
      SmallVector<Value> next;
      for (int64_t i = 0; i < U; ++i)
        for (int64_t j = 0; j < U; ++j) {
          IRMapping map;
          map.map(payload->getArgument(0), as[i]);
          map.map(payload->getArgument(1), bs[j]);
          map.map(payload->getArgument(2), inner.getRegionIterArgs()[i * U + j]);
          for (Operation &o : payload->without_terminator())
            ib.clone(o, map);
          next.push_back(map.lookupOrDefault(yield.getOperand(0)));
        }
      scf::YieldOp::create(ib, loc, next);
    }
    gpu::BarrierOp::create(lb, loc);
    scf::YieldOp::create(lb, loc, inner.getResults());
    // Store the outputs inside the result.
    for (int64_t i = 0; i < U; ++i)
      for (int64_t j = 0; j < U; ++j) {
        Value inM = arith::CmpIOp::create(xb, loc, arith::CmpIPredicate::ult, rows[i], rowsN);
        Value inN = arith::CmpIOp::create(xb, loc, arith::CmpIPredicate::ult, cols[j], colsN);
        Value in = arith::AndIOp::create(xb, loc, inM, inN);
        auto guard = scf::IfOp::create(xb, loc, in, /*withElseRegion=*/false);
        OpBuilder gb = guard.getThenBodyBuilder();
        spread(gb, d.m, rows[i]);
        spread(gb, d.n, cols[j]);
        memref::StoreOp::create(gb, loc, kLoop.getResult(i * U + j), cOp->get(),
                                indices(cOp, gb));
      }
    op->erase();
  }
};

// ------------------------------------------------------------------------------------------
// kiln-gpu-reduction-trees
// ------------------------------------------------------------------------------------------

/// Each host reduction whose body yields `combine(x, acc)` (acc, the output's value, used only
/// there; combine one of the associative, commutative arith ops) over at least `min-extent`
/// elements per result, all along the inputs' innermost dimension (so that consecutive
/// threads read consecutive elements: softmax and layer-norm rows, pooling windows, the
/// chunks of a split reduction) -> one gpu.launch with a block per result: its threads
/// combine strided elements, then a tree in workgroup memory combines the threads' partial
/// values, and thread 0 combines the total with the output's initial value. Where the
/// inputs' innermost dimension is the output's innermost one instead (a one-row product's
/// weight [k, n], a sum along an outer axis), a block holds 32 consecutive results (a warp
/// reads consecutive addresses) by slices of the reduction, and the tree runs over the
/// slices. Blocks are the largest power of two of threads within `block-size` and the
/// reduction extent; results beyond the grid are visited by a grid-stride loop.
struct ReductionTreesPass : PassWrapper<ReductionTreesPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(ReductionTreesPass)
  ReductionTreesPass() = default;
  ReductionTreesPass(const ReductionTreesPass &other) : PassWrapper(other) {}
  StringRef getArgument() const final { return "kiln-gpu-reduction-trees"; }
  StringRef getDescription() const final {
    return "Reductions along the innermost dimension as one block per result with a tree in "
           "workgroup memory";
  }
  Option<unsigned> blockSize{*this, "block-size", llvm::cl::desc("Most threads per block"),
                             llvm::cl::init(256)};
  Option<unsigned> minExtent{*this, "min-extent",
                             llvm::cl::desc("Fewest elements per result worth a block"),
                             llvm::cl::init(32)};
  Option<unsigned> maxGrid{*this, "max-grid", llvm::cl::desc("Most blocks in the grid"),
                           llvm::cl::init(65535)};

  struct Match {
    SmallVector<unsigned> par, red;
    Operation *combine;
    int64_t threads;
    /// Columns per block: 1 (a block per result), or `kWarp` results along `col`, the
    /// inputs' innermost parallel dimension (each warp reads consecutive columns).
    int64_t width = 1;
    std::optional<unsigned> col;
  };
  static constexpr int64_t kWarp = 32;

  static bool isCombiner(Operation *op) {
    return isa<arith::AddFOp, arith::MulFOp, arith::MaximumFOp, arith::MinimumFOp,
               arith::MaxNumFOp, arith::MinNumFOp, arith::AddIOp, arith::MulIOp,
               arith::MaxSIOp, arith::MinSIOp, arith::MaxUIOp, arith::MinUIOp, arith::AndIOp,
               arith::OrIOp, arith::XOrIOp>(op);
  }

  std::optional<Match> match(linalg::GenericOp op) {
    if (!op.hasPureBufferSemantics() || op.getNumDpsInits() != 1 || op.hasIndexSemantics() ||
        !cast<linalg::LinalgOp>(op.getOperation()).hasOnlyProjectedPermutations() ||
        op.getNumReductionLoops() == 0)
      return std::nullopt;
    Type elem = getElementTypeOrSelf(op.getDpsInitOperand(0)->get().getType());
    if (!elem.isF32() && !elem.isInteger(32))
      return std::nullopt;
    for (Operation &inner : op.getBlock()->without_terminator())
      if (!isPure(&inner) || inner.getNumRegions() != 0)
        return std::nullopt;
    Block *body = op.getBlock();
    Value acc = body->getArgument(body->getNumArguments() - 1);
    Value yielded = body->getTerminator()->getOperand(0);
    Operation *combine = yielded.getDefiningOp();
    if (!combine || combine->getBlock() != body || !isCombiner(combine) ||
        combine->getNumOperands() != 2 || !acc.hasOneUse() || acc.getUses().begin()->getOwner() != combine)
      return std::nullopt;
    Match m;
    auto iters = op.getIteratorTypesArray();
    for (unsigned d = 0; d < iters.size(); ++d)
      (iters[d] == utils::IteratorType::parallel ? m.par : m.red).push_back(d);
    // The output indexed by the parallel dimensions alone.
    AffineMap outMap = op.getMatchingIndexingMap(op.getDpsInitOperand(0));
    for (unsigned r = 0; r < outMap.getNumResults(); ++r)
      if (iters[outMap.getDimPosition(r)] != utils::IteratorType::parallel)
        return std::nullopt;
    // Consecutive reduction elements at consecutive addresses of every input that has them
    // (a block per result), or else consecutive results (a GEMV's weight [k, n], a reduction
    // along an outer axis): the inputs' innermost dimension is the output's innermost one or
    // a reduction dimension (blocks of kWarp columns).
    std::optional<unsigned> inner;
    if (outMap.getNumResults() > 0)
      inner = outMap.getDimPosition(outMap.getNumResults() - 1);
    bool rows = true, columns = inner.has_value();
    for (OpOperand *in : op.getDpsInputOperands()) {
      if (!isa<MemRefType>(in->get().getType())) {
        if (isa<ShapedType>(in->get().getType()))
          return std::nullopt;
        continue;
      }
      AffineMap map = op.getMatchingIndexingMap(in);
      bool uses = false;
      for (unsigned d : m.red)
        uses |= map.getResultPosition(getAffineDimExpr(d, op.getContext())).has_value();
      if (!uses)
        continue;
      if (map.getNumResults() == 0)
        return std::nullopt;
      unsigned last = map.getDimPosition(map.getNumResults() - 1);
      rows &= last == m.red.back();
      columns &= last == *inner || llvm::is_contained(m.red, last);
      auto t = cast<MemRefType>(in->get().getType());
      if (!t.getLayout().isIdentity())
        return std::nullopt;
    }
    int64_t extent = 1;
    for (unsigned d : m.red) {
      int64_t n = op.getStaticLoopRanges()[d];
      if (ShapedType::isDynamic(n))
        return std::nullopt;
      extent *= n;
    }
    if (extent < (int64_t)minExtent || !(rows || columns))
      return std::nullopt;
    if (!rows) {
      m.width = kWarp;
      m.col = inner;
    }
    // Slices of the reduction per column: a power of two, each with an element.
    int64_t slices = 1;
    while (slices * 2 <= extent && slices * 2 * m.width <= (int64_t)blockSize)
      slices *= 2;
    if (slices < 2)
      return std::nullopt;
    m.combine = combine;
    m.threads = slices * m.width;
    return m;
  }

  void runOnOperation() override {
    auto ops = hostOpsMatching<linalg::GenericOp>(getOperation(),
                                                  [&](linalg::GenericOp op) { return match(op); });
    for (auto &[op, m] : ops)
      rewrite(op, m);
  }

  void rewrite(linalg::GenericOp op, const Match &m) {
    Location loc = op.getLoc();
    OpBuilder b(op);
    LoopSpace space(cast<linalg::LinalgOp>(op.getOperation()), b);
    auto cst = [&](OpBuilder &at, int64_t v) { return space.constant(at, v); };
    // T threads: S slices of the reduction for each of W columns (W = 1: a block per result).
    const int64_t T = m.threads, W = m.width, S = T / W;
    SmallVector<unsigned> others;
    for (unsigned d : m.par)
      if (d != m.col)
        others.push_back(d);
    Value outer_n = space.product(b, others), extent = space.product(b, m.red);
    Value cols = m.col ? space.size[*m.col] : cst(b, 1);
    Value tiles = arith::CeilDivUIOp::create(b, loc, cols, cst(b, W));
    Value results = arith::MulIOp::create(b, loc, outer_n, tiles);
    Value grid = arith::MinUIOp::create(b, loc, results, cst(b, maxGrid));
    grid = arith::MaxUIOp::create(b, loc, grid, cst(b, 1));
    Value one = cst(b, 1);
    MLIRContext *ctx = &getContext();
    Type elem = getElementTypeOrSelf(op.getDpsInitOperand(0)->get().getType());
    auto wg = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
    auto partType = MemRefType::get({T}, elem, MemRefLayoutAttrInterface{}, wg);
    auto launch = gpu::LaunchOp::create(b, loc, grid, one, one, cst(b, T), one, one, nullptr,
                                        nullptr, ValueRange{}, TypeRange{partType});
    Value parts = launch.getWorkgroupAttributions()[0];
    Block &kbody = launch.getBody().front();
    OpBuilder k = OpBuilder::atBlockEnd(&kbody);
    Value tid = launch.getThreadIds().x;
    Value lane = arith::RemUIOp::create(k, loc, tid, cst(k, W));
    Value slice = arith::DivUIOp::create(k, loc, tid, cst(k, W));
    auto outer = scf::ForOp::create(k, loc, launch.getBlockIds().x, results, grid);
    gpu::TerminatorOp::create(k, loc);

    SmallVector<Value> &dimVal = space.dimVal;
    auto indices = [&](OpOperand *o) { return space.indices(o); };
    Block *body = op.getBlock();
    // The element value x of reduction element `r` (the body up to the combine).
    auto element = [&](OpBuilder &at, Value r) {
      space.spread(at, m.red, r);
      IRMapping map;
      for (OpOperand *in : op.getDpsInputOperands()) {
        Value arg = body->getArgument(in->getOperandNumber());
        if (isa<MemRefType>(in->get().getType()))
          map.map(arg, memref::LoadOp::create(at, loc, in->get(), indices(in)));
        else
          map.map(arg, in->get());
      }
      for (Operation &o : body->without_terminator())
        if (&o != m.combine)
          at.clone(o, map);
      Value acc = body->getArgument(body->getNumArguments() - 1);
      Value x = m.combine->getOperand(0) == acc ? m.combine->getOperand(1)
                                                : m.combine->getOperand(0);
      return map.lookupOrDefault(x);
    };
    auto combine = [&](OpBuilder &at, Value x, Value y) {
      IRMapping map;
      map.map(m.combine->getOperand(0), x);
      map.map(m.combine->getOperand(1), y);
      return at.clone(*m.combine, map)->getResult(0);
    };
    auto slot = [&](OpBuilder &at, Value sl) {
      return arith::AddIOp::create(at, loc, arith::MulIOp::create(at, loc, sl, cst(at, W)), lane)
          .getResult();
    };

    OpBuilder ob = OpBuilder::atBlockBegin(outer.getBody());
    Value tile = arith::RemUIOp::create(ob, loc, outer.getInductionVar(), tiles);
    space.spread(ob, others, arith::DivUIOp::create(ob, loc, outer.getInductionVar(), tiles));
    // This thread's column (clamped for reading; only columns inside are written).
    Value column = arith::AddIOp::create(ob, loc, arith::MulIOp::create(ob, loc, tile, cst(ob, W)),
                                         lane);
    if (m.col) {
      Value last = arith::SubIOp::create(ob, loc, cols, cst(ob, 1));
      dimVal[*m.col] = arith::MinUIOp::create(ob, loc, column, last);
    }
    SmallVector<Value> parVals(dimVal.begin(), dimVal.end());
    // This thread's partial: its first element (every slice has one: S <= extent), then the
    // elements S further on.
    Value first = element(ob, slice);
    Value start = arith::AddIOp::create(ob, loc, slice, cst(ob, S));
    auto strided = scf::ForOp::create(ob, loc, start, extent, cst(ob, S), ValueRange{first});
    {
      OpBuilder sb = OpBuilder::atBlockBegin(strided.getBody());
      Value x = element(sb, strided.getInductionVar());
      scf::YieldOp::create(sb, loc, combine(sb, strided.getRegionIterArgs()[0], x));
    }
    memref::StoreOp::create(ob, loc, strided.getResult(0), parts, ValueRange{tid});
    gpu::BarrierOp::create(ob, loc);
    for (int64_t half = S / 2; half >= 1; half /= 2) {
      Value active =
          arith::CmpIOp::create(ob, loc, arith::CmpIPredicate::ult, slice, cst(ob, half));
      auto guard = scf::IfOp::create(ob, loc, active, /*withElseRegion=*/false);
      OpBuilder gb = guard.getThenBodyBuilder();
      Value mine = memref::LoadOp::create(gb, loc, parts, ValueRange{tid});
      Value partner = slot(gb, arith::AddIOp::create(gb, loc, slice, cst(gb, half)));
      Value theirs = memref::LoadOp::create(gb, loc, parts, ValueRange{partner});
      memref::StoreOp::create(gb, loc, combine(gb, mine, theirs), parts, ValueRange{tid});
      gpu::BarrierOp::create(ob, loc);
    }
    Value lead = arith::CmpIOp::create(ob, loc, arith::CmpIPredicate::eq, slice, cst(ob, 0));
    // Without a column dimension every block is one result, always inside.
    if (m.col)
      lead = arith::AndIOp::create(
          ob, loc, lead,
          arith::CmpIOp::create(ob, loc, arith::CmpIPredicate::ult, column, cols));
    auto guard = scf::IfOp::create(ob, loc, lead, /*withElseRegion=*/false);
    {
      OpBuilder gb = guard.getThenBodyBuilder();
      dimVal.assign(parVals.begin(), parVals.end());
      OpOperand *out = op.getDpsInitOperand(0);
      Value total = memref::LoadOp::create(gb, loc, parts, ValueRange{lane});
      Value init = memref::LoadOp::create(gb, loc, out->get(), indices(out));
      // combine(x, acc) in the body's operand order.
      Value acc = body->getArgument(body->getNumArguments() - 1);
      Value result = m.combine->getOperand(1) == acc ? combine(gb, total, init)
                                                     : combine(gb, init, total);
      memref::StoreOp::create(gb, loc, result, out->get(), indices(out));
    }
    // The lanes of slice 0 read their totals above before any thread writes them again.
    gpu::BarrierOp::create(ob, loc);
    op->erase();
  }
};

// ------------------------------------------------------------------------------------------
// kiln-gpu-copies
// ------------------------------------------------------------------------------------------

struct CopiesPass : PassWrapper<CopiesPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(CopiesPass)
  StringRef getArgument() const final { return "kiln-gpu-copies"; }
  StringRef getDescription() const final {
    return "Rewrite memref.copy in host code as linalg.copy (a parallel loop nest)";
  }
  void runOnOperation() override {
    SmallVector<memref::CopyOp> copies;
    getOperation()->walk([&](memref::CopyOp copy) {
      if (!inDeviceCode(copy))
        copies.push_back(copy);
    });
    for (memref::CopyOp copy : copies) {
      OpBuilder b(copy);
      linalg::CopyOp::create(b, copy.getLoc(), ValueRange{copy.getSource()},
                             ValueRange{copy.getTarget()});
      copy.erase();
    }
  }
};

// ------------------------------------------------------------------------------------------
// kiln-gpu-map-loops
// ------------------------------------------------------------------------------------------

struct MapLoopsPass : PassWrapper<MapLoopsPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(MapLoopsPass)
  MapLoopsPass() = default;
  MapLoopsPass(const MapLoopsPass &other) : PassWrapper(other) {}
  StringRef getArgument() const final { return "kiln-gpu-map-loops"; }
  StringRef getDescription() const final {
    return "Map each outermost host scf.parallel onto a 1-D grid of thread blocks";
  }
  Option<unsigned> blockSize{*this, "block-size",
                             llvm::cl::desc("Threads per block"), llvm::cl::init(256)};
  Option<unsigned> maxGrid{*this, "max-grid",
                           llvm::cl::desc("Most blocks in the grid (x dimension)"),
                           llvm::cl::init(65535)};

  void runOnOperation() override {
    SmallVector<scf::ParallelOp> loops;
    getOperation()->walk([&](scf::ParallelOp loop) {
      if (inDeviceCode(loop) || loop->getParentOfType<scf::ParallelOp>())
        return;
      // Loops with reductions stay serial (kiln-gpu-serial runs them on one thread).
      if (!loop.getInitVals().empty())
        return;
      loops.push_back(loop);
    });
    for (scf::ParallelOp loop : loops)
      mapLoop(loop);
  }

  void mapLoop(scf::ParallelOp loop) {
    Location loc = loop.getLoc();
    OpBuilder b(loop);
    auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v).getResult(); };
    // Trip counts n_i = ceildiv(ub - lb, step), and their product.
    SmallVector<Value> counts;
    Value total = cst(1);
    for (auto [lb, ub, step] :
         llvm::zip(loop.getLowerBound(), loop.getUpperBound(), loop.getStep())) {
      Value span = arith::SubIOp::create(b, loc, ub, lb);
      Value n = arith::CeilDivUIOp::create(b, loc, span, step);
      counts.push_back(n);
      total = arith::MulIOp::create(b, loc, total, n);
    }
    Value threads = cst(blockSize);
    Value blocks = arith::CeilDivUIOp::create(b, loc, total, threads);
    blocks = arith::MinUIOp::create(b, loc, blocks, cst(maxGrid));
    // An empty loop: launch one block that finds nothing to do (grids may not be empty).
    blocks = arith::MaxUIOp::create(b, loc, blocks, cst(1));
    Value one = cst(1);
    auto launch = gpu::LaunchOp::create(b, loc, blocks, one, one, threads, one, one);
    Block &body = launch.getBody().front();
    OpBuilder kb = OpBuilder::atBlockEnd(&body);
    auto kcst = [&](int64_t v) { return arith::ConstantIndexOp::create(kb, loc, v).getResult(); };
    Value bx = launch.getBlockIds().x;
    Value tx = launch.getThreadIds().x;
    Value bdim = kcst(blockSize);
    Value start = arith::AddIOp::create(kb, loc, arith::MulIOp::create(kb, loc, bx, bdim), tx);
    // The grid size from the host value (a constant for static shapes, else a kernel
    // argument), not gpu.grid_dim: AMDGPU lowers that to a call into ROCm's device library
    // (__ockl_get_num_groups), which a machine without ROCm lacks.
    Value stride = arith::MulIOp::create(kb, loc, blocks, bdim);
    auto strided = scf::ForOp::create(kb, loc, start, total, stride);
    gpu::TerminatorOp::create(kb, loc);

    OpBuilder ib = OpBuilder::atBlockBegin(strided.getBody());
    Value rest = strided.getInductionVar();
    IRMapping map;
    size_t rank = counts.size();
    SmallVector<Value> ivs(rank);
    for (size_t k = rank; k-- > 0;) {
      Value i = rest;
      if (k > 0) {
        i = arith::RemUIOp::create(ib, loc, rest, counts[k]);
        rest = arith::DivUIOp::create(ib, loc, rest, counts[k]);
      }
      Value scaled = arith::MulIOp::create(ib, loc, i, loop.getStep()[k]);
      ivs[k] = arith::AddIOp::create(ib, loc, loop.getLowerBound()[k], scaled);
    }
    for (size_t k = 0; k < rank; ++k)
      map.map(loop.getInductionVars()[k], ivs[k]);
    for (Operation &op : loop.getBody()->without_terminator())
      ib.clone(op, map);
    loop.erase();
  }
};

// ------------------------------------------------------------------------------------------
// kiln-gpu-serial
// ------------------------------------------------------------------------------------------

/// Whether `op` (or an op nested in it) reads or writes memory other than allocating or
/// freeing it.
bool touchesMemory(Operation *op) {
  bool touches = false;
  op->walk([&](Operation *inner) {
    if (touches)
      return WalkResult::interrupt();
    if (isa<gpu::LaunchOp>(inner))
      return WalkResult::skip();
    auto effects = dyn_cast<MemoryEffectOpInterface>(inner);
    if (!effects) {
      // Ops without the interface: only region-holding control flow and pure ops are
      // expected; anything else is treated as touching memory to be safe.
      if (!inner->hasTrait<OpTrait::HasRecursiveMemoryEffects>() && !isPure(inner) &&
          inner->getNumRegions() == 0 && !inner->hasTrait<OpTrait::IsTerminator>())
        touches = true;
      return WalkResult::advance();
    }
    SmallVector<MemoryEffects::EffectInstance> list;
    effects.getEffects(list);
    for (auto &e : list)
      if (isa<MemoryEffects::Read, MemoryEffects::Write>(e.getEffect()))
        touches = true;
    return WalkResult::advance();
  });
  return touches;
}

bool containsLaunch(Operation *op) {
  bool found = false;
  op->walk([&](gpu::LaunchOp) {
    found = true;
    return WalkResult::interrupt();
  });
  return found;
}

struct SerialPass : PassWrapper<SerialPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(SerialPass)
  StringRef getArgument() const final { return "kiln-gpu-serial"; }
  StringRef getDescription() const final {
    return "Run host code that touches memory as one-thread gpu.launch kernels";
  }

  void runOnOperation() override {
    bool ok = true;
    getOperation()->walk([&](func::FuncOp f) {
      if (inDeviceCode(f) || f.isExternal())
        return;
      for (Block &block : f.getBody())
        if (failed(wrapBlock(block)))
          ok = false;
    });
    if (!ok)
      signalPassFailure();
  }

  enum Kind { Host, Device, Barrier };

  Kind classify(Operation &op) {
    if (op.hasTrait<OpTrait::IsTerminator>() || isa<gpu::LaunchOp>(op))
      return Barrier;
    if (containsLaunch(&op))
      return Barrier;
    if (touchesMemory(&op))
      return Device;
    return Host;
  }

  LogicalResult wrapBlock(Block &block) {
    // Region ops that launch kernels (host loops over launches) keep running on the host;
    // their bodies are processed like this block.
    for (Operation &op : block)
      if (containsLaunch(&op) && !isa<gpu::LaunchOp>(op))
        for (Region &r : op.getRegions())
          for (Block &inner : r)
            if (failed(wrapBlock(inner)))
              return failure();
    SmallVector<Operation *> ops;
    for (Operation &op : block)
      ops.push_back(&op);
    size_t i = 0;
    while (i < ops.size()) {
      if (classify(*ops[i]) != Device) {
        ++i;
        continue;
      }
      // The group runs from ops[i] to ops[j]: extended while later device ops follow
      // (host ops between them join only when they are pure: allocations and other
      // effects stay in place and end the group) and while a value of the group is used
      // after it.
      size_t j = i;
      // Address computations (views of buffers) stay on the host: device code of some
      // targets cannot express them (memref.view on SPIR-V), and they never depend on what
      // the group computes.
      auto isAddress = [&](Operation *op) {
        return op->getNumResults() > 0 &&
               llvm::all_of(op->getResultTypes(), [](Type t) { return isa<MemRefType>(t); });
      };
      auto extendable = [&](size_t k) {
        Kind kind = classify(*ops[k]);
        return kind == Device || (kind == Host && isPure(ops[k]) &&
                                  ops[k]->getNumRegions() == 0 && !isAddress(ops[k]));
      };
      while (true) {
        size_t next = j + 1;
        // Next device op reachable through pure ops.
        size_t k = next;
        while (k < ops.size() && classify(*ops[k]) == Host && extendable(k))
          ++k;
        if (k < ops.size() && classify(*ops[k]) == Device) {
          j = k;
          continue;
        }
        // Escaping values: extend to their last user in this block.
        size_t last = j;
        for (size_t m = i; m <= j; ++m)
          for (Value v : ops[m]->getResults())
            for (Operation *user : v.getUsers()) {
              Operation *top = block.findAncestorOpInBlock(*user);
              if (!top)
                continue;
              auto pos = llvm::find(ops, top) - ops.begin();
              if ((size_t)pos > last)
                last = pos;
            }
        if (last == j)
          break;
        for (size_t m = j + 1; m <= last; ++m)
          if (!extendable(m))
            return ops[i]->emitError(
                "GPU lowering: a value computed on the device is used by host code (")
                   << ops[m]->getName() << ")";
        j = last;
      }
      // Address computations inside the group's span move in front of it (their operands
      // come from before the group: they are not extendable, so no group value feeds them).
      for (size_t m = i; m <= j; ++m)
        if (classify(*ops[m]) == Host && isAddress(ops[m])) {
          for (Value v : ops[m]->getOperands())
            if (Operation *def = v.getDefiningOp())
              for (size_t q = i; q <= j; ++q)
                if (ops[q] == def)
                  return ops[m]->emitError(
                      "GPU lowering: a buffer address depends on device code");
          ops[m]->moveBefore(ops[i]);
        }
      OpBuilder b(ops[i]);
      Location loc = ops[i]->getLoc();
      Value one = arith::ConstantIndexOp::create(b, loc, 1);
      auto launch = gpu::LaunchOp::create(b, loc, one, one, one, one, one, one);
      Block &body = launch.getBody().front();
      for (size_t m = i; m <= j; ++m)
        if (!(classify(*ops[m]) == Host && isAddress(ops[m])))
          ops[m]->moveBefore(&body, body.end());
      OpBuilder eb = OpBuilder::atBlockEnd(&body);
      gpu::TerminatorOp::create(eb, loc);
      i = j + 1;
    }
    return success();
  }
};

// ------------------------------------------------------------------------------------------
// kiln-gpu-merge-modules
// ------------------------------------------------------------------------------------------

constexpr const char *kMergedModule = "kiln_kernels";

struct MergeModulesPass : PassWrapper<MergeModulesPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(MergeModulesPass)
  StringRef getArgument() const final { return "kiln-gpu-merge-modules"; }
  StringRef getDescription() const final {
    return "Move every outlined kernel into one gpu.module, renamed after its module";
  }
  void runOnOperation() override {
    ModuleOp top = getOperation();
    SmallVector<gpu::GPUModuleOp> modules(top.getOps<gpu::GPUModuleOp>());
    if (modules.empty())
      return;
    OpBuilder b(modules.front());
    auto merged = gpu::GPUModuleOp::create(b, modules.front().getLoc(), kMergedModule);
    Block &dest = merged.getBodyRegion().front();
    // Renaming: (old module, old function) -> new function name.
    llvm::StringMap<std::string> renamed;
    for (gpu::GPUModuleOp m : modules) {
      for (Operation &op : llvm::make_early_inc_range(m.getBody()->without_terminator())) {
        auto f = dyn_cast<gpu::GPUFuncOp>(op);
        std::string name = m.getName().str();
        if (f && f.getName() != m.getName())
          name += "_" + f.getName().str();
        if (f) {
          renamed[(m.getName() + "::" + f.getName()).str()] = name;
          f.setName(name);
        }
        op.moveBefore(&dest, dest.end());
      }
    }
    top.walk([&](gpu::LaunchFuncOp launch) {
      SymbolRefAttr kernel = launch.getKernel();
      std::string key = (kernel.getRootReference().getValue() + "::" +
                         kernel.getLeafReference().getValue())
                            .str();
      auto it = renamed.find(key);
      if (it == renamed.end())
        return;
      launch.setKernelAttr(SymbolRefAttr::get(
          b.getStringAttr(kMergedModule),
          {FlatSymbolRefAttr::get(b.getContext(), it->second)}));
    });
    for (gpu::GPUModuleOp m : modules)
      m.erase();
  }
};

// ------------------------------------------------------------------------------------------
// kiln-gpu-spirv-abi
// ------------------------------------------------------------------------------------------

struct SpirvAbiPass : PassWrapper<SpirvAbiPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(SpirvAbiPass)
  StringRef getArgument() const final { return "kiln-gpu-spirv-abi"; }
  StringRef getDescription() const final {
    return "Set spirv.entry_point_abi (workgroup size) on every kernel from known_block_size";
  }
  void runOnOperation() override {
    bool ok = true;
    getOperation()->walk([&](gpu::GPUFuncOp f) {
      if (!f.isKernel())
        return;
      auto known = f.getKnownBlockSize();
      if (!known) {
        f.emitError("GPU lowering: kernel without a static block size");
        ok = false;
        return;
      }
      auto size = DenseI32ArrayAttr::get(f.getContext(), *known);
      f->setAttr(spirv::getEntryPointABIAttrName(),
                 spirv::getEntryPointABIAttr(f.getContext(), size));
    });
    // Conversions other than convert-gpu-to-spirv look the target environment up as the
    // `spirv.target_env` attribute of an enclosing op, not in the module's targets.
    getOperation()->walk([&](gpu::GPUModuleOp m) {
      if (auto targets = m.getTargetsAttr())
        for (Attribute t : targets)
          if (auto env = dyn_cast<spirv::TargetEnvAttr>(t))
            m->setAttr(spirv::getTargetEnvAttrName(), env);
    });
    if (!ok)
      signalPassFailure();
  }
};

// ------------------------------------------------------------------------------------------
// kiln-gpu-math
// ------------------------------------------------------------------------------------------

struct MathPass : PassWrapper<MathPass, OperationPass<>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(MathPass)
  MathPass() = default;
  MathPass(const MathPass &other) : PassWrapper(other) {}
  StringRef getArgument() const final { return "kiln-gpu-math"; }
  StringRef getDescription() const final {
    return "Polynomial approximations of the listed math ops (f32; f16/bf16 through f32)";
  }
  ListOption<std::string> ops{*this, "ops",
                              llvm::cl::desc("Math op names to approximate (erf, tanh, ...)")};
  ListOption<std::string> viaF32{*this, "f64-via-f32",
                                 llvm::cl::desc("Math op names whose f64 form runs in f32")};

  void runOnOperation() override {
    // f64 first: the f32 ops it makes may be approximated below.
    llvm::StringSet<> demote;
    for (const std::string &n : viaF32)
      demote.insert(("math." + n));
    SmallVector<Operation *> narrow;
    getOperation()->walk([&](Operation *op) {
      if (!demote.contains(op->getName().getStringRef()) || op->getNumResults() != 1 ||
          !op->getResult(0).getType().isF64())
        return;
      if (llvm::all_of(op->getOperandTypes(), [](Type t) { return t.isF64(); }))
        narrow.push_back(op);
    });
    for (Operation *op : narrow) {
      OpBuilder b(op);
      Location loc = op->getLoc();
      SmallVector<Value> args;
      for (Value v : op->getOperands())
        args.push_back(arith::TruncFOp::create(b, loc, b.getF32Type(), v));
      OperationState state(loc, op->getName());
      state.addOperands(args);
      state.addTypes(b.getF32Type());
      state.addAttributes(op->getAttrs());
      Operation *f32 = b.create(state);
      Value wide = arith::ExtFOp::create(b, loc, b.getF64Type(), f32->getResult(0));
      op->getResult(0).replaceAllUsesWith(wide);
      op->erase();
    }
    llvm::StringSet<> names;
    for (const std::string &n : ops)
      names.insert(n);
    // The predicate sees full op names (`math.erf`); the option lists short ones.
    auto wanted = [&](StringRef name) {
      name.consume_front("math.");
      return names.contains(name);
    };
    // remf(x, y) = x where x is finite and y infinite (IEEE fmod), else the device's remf.
    if (names.contains("remf")) {
      SmallVector<arith::RemFOp> rems;
      getOperation()->walk([&](arith::RemFOp op) { rems.push_back(op); });
      for (arith::RemFOp op : rems) {
        OpBuilder b(op);
        b.setInsertionPointAfter(op);
        Location loc = op.getLoc();
        Value x = op.getLhs(), y = op.getRhs();
        Type t = x.getType();
        Type et = getElementTypeOrSelf(t);
        auto ft = dyn_cast<FloatType>(et);
        if (!ft)
          continue;
        Attribute infAttr = b.getFloatAttr(ft, APFloat::getInf(ft.getFloatSemantics()));
        if (auto shaped = dyn_cast<ShapedType>(t))
          infAttr = DenseElementsAttr::get(shaped, infAttr);
        Value inf = arith::ConstantOp::create(b, loc, cast<TypedAttr>(infAttr));
        Value ay = math::AbsFOp::create(b, loc, y), ax = math::AbsFOp::create(b, loc, x);
        Value yInf = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, ay, inf);
        Value xFinite = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OLT, ax, inf);
        Value keep = arith::AndIOp::create(b, loc, yInf, xFinite);
        Value r = op.getResult();
        auto sel = arith::SelectOp::create(b, loc, keep, x, r);
        r.replaceAllUsesExcept(sel.getResult(), sel);
      }
    }
    RewritePatternSet patterns(&getContext());
    populateMathF32ExpansionPatterns(patterns, wanted);
    populateMathPolynomialApproximationPatterns(patterns, wanted);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
    // trunc(x) = x < 0 ? ceil(x) : floor(x), for devices whose conversion has floor and ceil
    // but no trunc (SPIR-V: GLSL's Floor and Ceil). NaN takes the floor branch (NaN).
    if (names.contains("trunc")) {
      SmallVector<math::TruncOp> truncs;
      getOperation()->walk([&](math::TruncOp op) { truncs.push_back(op); });
      for (math::TruncOp op : truncs) {
        OpBuilder b(op);
        Location loc = op.getLoc();
        Value x = op.getOperand();
        Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(x.getType()));
        Value neg = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OLT, x, zero);
        Value up = math::CeilOp::create(b, loc, x);
        Value down = math::FloorOp::create(b, loc, x);
        op.replaceAllUsesWith(arith::SelectOp::create(b, loc, neg, up, down).getResult());
        op.erase();
      }
    }
    // roundeven(x) for f64, in integers (lavapipe folds float tricks such as
    // (|x| + 2^52) - 2^52): t = trunc(x) through i64, then one step away from zero where
    // |x - t| > 0.5, or = 0.5 and t is odd. From 2^52 on every f64 is an integer (and NaN
    // fails the comparison), so x stays; copysign keeps -0 for x in (-0.5, -0].
    if (names.contains("roundeven")) {
      SmallVector<math::RoundEvenOp> rounds;
      getOperation()->walk([&](math::RoundEvenOp op) {
        if (getElementTypeOrSelf(op.getType()).isF64())
          rounds.push_back(op);
      });
      for (math::RoundEvenOp op : rounds) {
        OpBuilder b(op);
        Location loc = op.getLoc();
        Value x = op.getOperand();
        Type ft = x.getType();
        Type it = b.getI64Type();
        if (auto shaped = dyn_cast<ShapedType>(ft))
          it = shaped.clone(it);
        auto fconst = [&](double v) -> Value {
          Attribute attr = b.getF64FloatAttr(v);
          if (auto shaped = dyn_cast<ShapedType>(ft))
            attr = DenseElementsAttr::get(shaped, attr);
          return arith::ConstantOp::create(b, loc, cast<TypedAttr>(attr));
        };
        auto iconst = [&](int64_t v) -> Value {
          Attribute attr = b.getI64IntegerAttr(v);
          if (auto shaped = dyn_cast<ShapedType>(it))
            attr = DenseElementsAttr::get(shaped, attr);
          return arith::ConstantOp::create(b, loc, cast<TypedAttr>(attr));
        };
        using P = arith::CmpFPredicate;
        Value ax = math::AbsFOp::create(b, loc, x);
        Value small = arith::CmpFOp::create(b, loc, P::OLT, ax, fconst(4503599627370496.0));
        Value xs = arith::SelectOp::create(b, loc, small, x, fconst(0.0));
        Value i = arith::FPToSIOp::create(b, loc, it, xs);
        Value t = arith::SIToFPOp::create(b, loc, ft, i);
        Value ad = math::AbsFOp::create(b, loc, arith::SubFOp::create(b, loc, xs, t));
        Value odd = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne,
                                          arith::AndIOp::create(b, loc, i, iconst(1)), iconst(0));
        Value half = fconst(0.5);
        Value tie = arith::AndIOp::create(
            b, loc, arith::CmpFOp::create(b, loc, P::OEQ, ad, half), odd);
        Value up = arith::OrIOp::create(b, loc, arith::CmpFOp::create(b, loc, P::OGT, ad, half),
                                        tie);
        Value away = math::CopySignOp::create(b, loc, fconst(1.0), x);
        Value r = arith::SelectOp::create(b, loc, up, arith::AddFOp::create(b, loc, t, away), t);
        r = math::CopySignOp::create(b, loc, r, x);
        op.replaceAllUsesWith(arith::SelectOp::create(b, loc, small, r, x).getResult());
        op.erase();
      }
    }
    // floor(x) = -ceil(-x), and ceil expands into arithmetic (devices whose math library
    // is the only lowering of floor: AMDGPU without ROCm's device libraries). After the
    // approximations, which use floor themselves (sin, cos).
    if (!names.contains("floor"))
      return;
    SmallVector<math::FloorOp> floors;
    getOperation()->walk([&](math::FloorOp op) { floors.push_back(op); });
    for (math::FloorOp op : floors) {
      OpBuilder b(op);
      Location loc = op.getLoc();
      Value neg = arith::NegFOp::create(b, loc, op.getOperand());
      Value up = math::CeilOp::create(b, loc, neg);
      op.replaceAllUsesWith(arith::NegFOp::create(b, loc, up).getResult());
      op.erase();
    }
    RewritePatternSet ceil(&getContext());
    math::populateExpansionPatterns(ceil, {"ceil"});
    if (failed(applyPatternsGreedily(getOperation(), std::move(ceil))))
      signalPassFailure();
  }
};

// ------------------------------------------------------------------------------------------
// kiln-gpu-loop-results
// ------------------------------------------------------------------------------------------

struct LoopResultsPass : PassWrapper<LoopResultsPass, OperationPass<>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(LoopResultsPass)
  StringRef getArgument() const final { return "kiln-gpu-loop-results"; }
  StringRef getDescription() const final {
    return "Results of scf.for loops that may run zero times -> select(lb < ub, result, init)";
  }

  void runOnOperation() override {
    SmallVector<scf::ForOp> loops;
    getOperation()->walk([&](scf::ForOp loop) {
      if (loop.getNumResults() != 0)
        loops.push_back(loop);
    });
    for (scf::ForOp loop : loops) {
      // A loop known to run at least once needs nothing.
      std::optional<int64_t> lb = getConstantIntValue(loop.getLowerBound());
      std::optional<int64_t> ub = getConstantIntValue(loop.getUpperBound());
      if (lb && ub && *lb < *ub)
        continue;
      OpBuilder b(loop);
      b.setInsertionPointAfter(loop);
      Location loc = loop.getLoc();
      Value runs = arith::CmpIOp::create(b, loc, loop.getUnsignedCmp() ? arith::CmpIPredicate::ult
                                                                        : arith::CmpIPredicate::slt,
                                         loop.getLowerBound(), loop.getUpperBound());
      for (auto [result, init] : llvm::zip(loop.getResults(), loop.getInitArgs())) {
        auto sel = arith::SelectOp::create(b, loc, runs, result, init);
        result.replaceAllUsesExcept(sel.getResult(), sel);
      }
    }
  }
};

// ------------------------------------------------------------------------------------------
// kiln-gpu-llvm-intrinsics
// ------------------------------------------------------------------------------------------

struct LlvmIntrinsicsPass : PassWrapper<LlvmIntrinsicsPass, OperationPass<>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(LlvmIntrinsicsPass)
  StringRef getArgument() const final { return "kiln-gpu-llvm-intrinsics"; }
  StringRef getDescription() const final {
    return "Math ops with an LLVM intrinsic -> llvm.call_intrinsic (NVPTX without libdevice)";
  }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<LLVM::LLVMDialect>();
  }

  void runOnOperation() override {
    static const std::pair<StringRef, StringRef> table[] = {
        {"math.sqrt", "llvm.sqrt"},         {"math.floor", "llvm.floor"},
        {"math.ceil", "llvm.ceil"},         {"math.absf", "llvm.fabs"},
        {"math.fma", "llvm.fma"},           {"math.copysign", "llvm.copysign"},
        {"math.round", "llvm.round"},       {"math.roundeven", "llvm.roundeven"},
        {"math.trunc", "llvm.trunc"},       {"arith.minnumf", "llvm.minnum"},
        {"arith.maxnumf", "llvm.maxnum"},   {"arith.minimumf", "llvm.minimum"},
        {"arith.maximumf", "llvm.maximum"},
    };
    llvm::StringMap<StringRef> intrinsic;
    for (auto [op, name] : table)
      intrinsic[op] = name;
    SmallVector<Operation *> ops;
    getOperation()->walk([&](Operation *op) {
      if (op->getNumResults() == 1 && intrinsic.count(op->getName().getStringRef()) &&
          isa<FloatType>(op->getResult(0).getType()))
        ops.push_back(op);
    });
    for (Operation *op : ops) {
      OpBuilder b(op);
      StringRef name = intrinsic[op->getName().getStringRef()];
      auto call = LLVM::CallIntrinsicOp::create(b, op->getLoc(), op->getResult(0).getType(),
                                                b.getStringAttr(name), op->getOperands());
      op->getResult(0).replaceAllUsesWith(call.getResult(0));
      op->erase();
    }
  }
};

// ------------------------------------------------------------------------------------------
// kiln-gpu-demote-f64
// ------------------------------------------------------------------------------------------

/// Retypes a kernel in place: its arguments, every block argument and every result of an
/// op `keep` does not exclude get `map(type)` (the caller rewrites the ops whose meaning
/// the new types change). Shared by the passes that change how a device stores a type.
static void retypeKernel(gpu::GPUFuncOp fn, function_ref<Type(Type)> map,
                         function_ref<bool(Operation *)> keep) {
  SmallVector<Type> inputs;
  for (Type t : fn.getArgumentTypes())
    inputs.push_back(map(t));
  fn.setFunctionTypeAttr(TypeAttr::get(FunctionType::get(fn.getContext(), inputs, {})));
  fn->walk([&](Block *b) {
    for (BlockArgument a : b->getArguments())
      a.setType(map(a.getType()));
  });
  fn->walk([&](Operation *op) {
    if (keep(op))
      return;
    for (OpResult r : op->getResults())
      r.setType(map(r.getType()));
  });
}

struct DemoteF64Pass : PassWrapper<DemoteF64Pass, OperationPass<gpu::GPUModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(DemoteF64Pass)
  StringRef getArgument() const final { return "kiln-gpu-demote-f64"; }
  StringRef getDescription() const final {
    return "f64 values and buffers inside kernels -> f32 (devices without double precision)";
  }

  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    Type f32 = Float32Type::get(ctx);
    auto demote = [&](Type t) -> Type {
      if (t.isF64())
        return f32;
      if (auto m = dyn_cast<MemRefType>(t); m && m.getElementType().isF64())
        return MemRefType::get(m.getShape(), f32, m.getLayout(), m.getMemorySpace());
      if (auto v = dyn_cast<VectorType>(t); v && v.getElementType().isF64())
        return v.clone(f32);
      return t;
    };
    bool ok = true;
    getOperation().walk([&](gpu::GPUFuncOp fn) {
      for (Type t : fn.getArgumentTypes())
        if (t.isF64()) {
          // Its launch slot was laid out for 8 bytes (kiln-gpu-launch-abi ran before).
          fn.emitError("an f64 scalar kernel argument on a device without double precision");
          ok = false;
        }
      retypeKernel(fn, demote, [](Operation *) { return false; });
      fn->walk([&](Operation *op) {
        auto c = dyn_cast<arith::ConstantOp>(op);
        if (!c)
          return;
        if (auto fa = dyn_cast<FloatAttr>(c.getValue()); fa && fa.getType().isF64()) {
          c.setValueAttr(FloatAttr::get(f32, fa.getValueAsDouble()));
        } else if (auto da = dyn_cast<DenseFPElementsAttr>(c.getValue());
                   da && da.getElementType().isF64()) {
          c.setValueAttr(da.mapValues(f32, [](const APFloat &v) {
            bool lost = false;
            APFloat w = v;
            w.convert(APFloat::IEEEsingle(), APFloat::rmNearestTiesToEven, &lost);
            return w.bitcastToAPInt();
          }));
        }
      });
    });
    // Conversions between f32 and (what was) f64 are now identities.
    SmallVector<Operation *> identities;
    getOperation().walk([&](Operation *op) {
      if (isa<arith::ExtFOp, arith::TruncFOp>(op) &&
          op->getOperand(0).getType() == op->getResult(0).getType())
        identities.push_back(op);
    });
    for (Operation *op : identities) {
      op->getResult(0).replaceAllUsesWith(op->getOperand(0));
      op->erase();
    }
    if (!ok)
      signalPassFailure();
  }
};

// ------------------------------------------------------------------------------------------
// kiln-gpu-bf16-storage
// ------------------------------------------------------------------------------------------

struct Bf16StoragePass : PassWrapper<Bf16StoragePass, OperationPass<gpu::GPUModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(Bf16StoragePass)
  StringRef getArgument() const final { return "kiln-gpu-bf16-storage"; }
  StringRef getDescription() const final {
    return "bf16 memrefs inside kernels -> i16 memrefs with bitcasting loads and stores";
  }

  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    Type i16 = IntegerType::get(ctx, 16);
    Type bf16 = BFloat16Type::get(ctx);
    auto storage = [&](Type t) -> Type {
      if (auto m = dyn_cast<MemRefType>(t); m && m.getElementType().isBF16())
        return MemRefType::get(m.getShape(), i16, m.getLayout(), m.getMemorySpace());
      return t;
    };
    getOperation().walk([&](gpu::GPUFuncOp fn) {
      SmallVector<memref::LoadOp> loads;
      SmallVector<memref::StoreOp> stores;
      fn->walk([&](Operation *op) {
        if (auto l = dyn_cast<memref::LoadOp>(op); l && l.getResult().getType().isBF16())
          loads.push_back(l);
        if (auto st = dyn_cast<memref::StoreOp>(op); st && st.getValue().getType().isBF16())
          stores.push_back(st);
      });
      retypeKernel(fn, storage, [](Operation *) { return false; });
      for (memref::LoadOp l : loads) {
        OpBuilder b(l);
        b.setInsertionPointAfter(l);
        l.getResult().setType(i16);
        auto cast = arith::BitcastOp::create(b, l.getLoc(), bf16, l.getResult());
        l.getResult().replaceAllUsesExcept(cast.getResult(), cast);
      }
      for (memref::StoreOp st : stores) {
        OpBuilder b(st);
        auto cast = arith::BitcastOp::create(b, st.getLoc(), i16, st.getValue());
        st.getValueMutable().assign(cast.getResult());
      }
      // Selects between bf16 values pick their bits (arith-emulate-unsupported-floats
      // leaves selects alone).
      SmallVector<arith::SelectOp> selects;
      fn->walk([&](arith::SelectOp op) {
        if (op.getType().isBF16())
          selects.push_back(op);
      });
      for (arith::SelectOp op : selects) {
        OpBuilder b(op);
        Location loc = op.getLoc();
        Value t = arith::BitcastOp::create(b, loc, i16, op.getTrueValue());
        Value f = arith::BitcastOp::create(b, loc, i16, op.getFalseValue());
        Value sel = arith::SelectOp::create(b, loc, op.getCondition(), t, f);
        op.replaceAllUsesWith(arith::BitcastOp::create(b, loc, bf16, sel).getResult());
        op.erase();
      }
    });
    // arith-expand converts between bf16 and f32 only. f64 -> bf16 goes through f32
    // rounded to odd (truncated toward zero, the last bit set when inexact), which makes
    // the second rounding the correctly rounded one; bf16 -> f64 through f32 is exact.
    Type f32 = Float32Type::get(ctx), i32 = IntegerType::get(ctx, 32);
    SmallVector<Operation *> wide;
    getOperation().walk([&](Operation *op) {
      if (auto t = dyn_cast<arith::TruncFOp>(op); t && t.getType().isBF16() &&
                                                    !t.getIn().getType().isF32())
        wide.push_back(op);
      if (auto e = dyn_cast<arith::ExtFOp>(op); e && e.getIn().getType().isBF16() &&
                                                  !e.getType().isF32())
        wide.push_back(op);
    });
    for (Operation *op : wide) {
      OpBuilder b(op);
      Location loc = op->getLoc();
      Value in = op->getOperand(0);
      Value out;
      if (isa<arith::ExtFOp>(op)) {
        Value mid = arith::ExtFOp::create(b, loc, f32, in);
        out = arith::ExtFOp::create(b, loc, op->getResult(0).getType(), mid);
      } else {
        Value t = arith::TruncFOp::create(b, loc, f32, in);
        Value back = arith::ExtFOp::create(b, loc, in.getType(), t);
        Value over = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT,
                                           math::AbsFOp::create(b, loc, back),
                                           math::AbsFOp::create(b, loc, in));
        Value inexact = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::ONE, back, in);
        Value bits = arith::BitcastOp::create(b, loc, i32, t);
        Value one = arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(1));
        Value down = arith::SubIOp::create(b, loc, bits, one);
        bits = arith::SelectOp::create(b, loc, over, down, bits);
        Value odd = arith::OrIOp::create(b, loc, bits, one);
        bits = arith::SelectOp::create(b, loc, inexact, odd, bits);
        Value t32 = arith::BitcastOp::create(b, loc, f32, bits);
        out = arith::TruncFOp::create(b, loc, bf16, t32);
      }
      op->getResult(0).replaceAllUsesWith(out);
      op->erase();
    }
  }
};

// ------------------------------------------------------------------------------------------
// kiln-gpu-nest-spirv
// ------------------------------------------------------------------------------------------

struct NestSpirvPass : PassWrapper<NestSpirvPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(NestSpirvPass)
  StringRef getArgument() const final { return "kiln-gpu-nest-spirv"; }
  StringRef getDescription() const final {
    return "Move each spirv.module into the gpu.module it was converted from";
  }
  void runOnOperation() override {
    ModuleOp top = getOperation();
    SmallVector<spirv::ModuleOp> spv(top.getOps<spirv::ModuleOp>());
    for (spirv::ModuleOp s : spv) {
      // convert-gpu-to-spirv names the module `__spv__<gpu module name>`.
      StringRef name = s.getName().value_or("");
      if (!name.consume_front("__spv__")) {
        s.emitError("GPU lowering: unexpected spirv.module name");
        return signalPassFailure();
      }
      auto gm = top.lookupSymbol<gpu::GPUModuleOp>(name);
      if (!gm) {
        s.emitError("GPU lowering: no gpu.module for this spirv.module");
        return signalPassFailure();
      }
      // The kernels are now in the spirv.module; the gpu.funcs are dropped.
      for (Operation &op : llvm::make_early_inc_range(gm.getBody()->without_terminator()))
        op.erase();
      s->moveBefore(gm.getBody(), gm.getBody()->begin());
    }
  }
};

// ------------------------------------------------------------------------------------------
// kiln-gpu-spirv-workgroup
// ------------------------------------------------------------------------------------------

/// Each workgroup attribution of a kernel -> a memref.alloc in SPIR-V's Workgroup storage
/// class at the kernel's entry, which convert-gpu-to-spirv turns into a Workgroup global
/// variable (it converts no gpu.func that still has attributions).
struct SpirvWorkgroupPass : PassWrapper<SpirvWorkgroupPass, OperationPass<gpu::GPUModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(SpirvWorkgroupPass)
  StringRef getArgument() const final { return "kiln-gpu-spirv-workgroup"; }
  StringRef getDescription() const final {
    return "Workgroup attributions of kernels as Workgroup-storage memref.alloc";
  }
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    auto storage = spirv::StorageClassAttr::get(ctx, spirv::StorageClass::Workgroup);
    getOperation().walk([&](gpu::GPUFuncOp f) {
      unsigned n = f.getNumWorkgroupAttributions();
      if (n == 0)
        return;
      unsigned first = f.getFirstWorkgroupAttributionIndex();
      Block &entry = f.getBody().front();
      OpBuilder b = OpBuilder::atBlockBegin(&entry);
      for (unsigned i = 0; i < n; ++i) {
        BlockArgument arg = entry.getArgument(first + i);
        auto t = cast<MemRefType>(arg.getType());
        auto spv = MemRefType::get(t.getShape(), t.getElementType(), t.getLayout(), storage);
        Value alloc = memref::AllocOp::create(b, f.getLoc(), spv);
        arg.replaceAllUsesWith(alloc);
      }
      entry.eraseArguments(first, n);
      f->setAttr(gpu::GPUFuncOp::getNumWorkgroupAttributionsAttrName(),
                 IntegerAttr::get(IntegerType::get(ctx, 64), 0));
    });
  }
};

// ------------------------------------------------------------------------------------------
// kiln-gpu-launch-abi
// ------------------------------------------------------------------------------------------

constexpr const char *kLaunchFn = "kiln_gpu_launch";

struct LaunchAbiPass : PassWrapper<LaunchAbiPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(LaunchAbiPass)
  LaunchAbiPass() = default;
  LaunchAbiPass(const LaunchAbiPass &other) : PassWrapper(other) {}
  StringRef getArgument() const final { return "kiln-gpu-launch-abi"; }
  StringRef getDescription() const final {
    return "Replace gpu.launch_func by calls of kiln_gpu_launch and record the kernel table";
  }
  Option<unsigned> indexBytes{*this, "index-bytes",
                              llvm::cl::desc("Bytes of an index kernel argument on the device"),
                              llvm::cl::init(8)};

  /// One argument's kind letter and device byte size: `p` device address, `i` integer,
  /// `f` float (the runtime copies the low `bytes` bytes of its slot).
  LogicalResult argKind(Type t, std::string &out) {
    if (isa<MemRefType>(t)) {
      out += "p8 ";
      return success();
    }
    if (t.isIndex()) {
      out += "i" + std::to_string(indexBytes) + " ";
      return success();
    }
    if (auto i = dyn_cast<IntegerType>(t)) {
      out += "i" + std::to_string(std::max(1u, i.getWidth() / 8)) + " ";
      return success();
    }
    if (auto f = dyn_cast<FloatType>(t)) {
      out += "f" + std::to_string(f.getWidth() / 8) + " ";
      return success();
    }
    return failure();
  }

  /// `v` as the bits of an i64 slot.
  Value toSlot(OpBuilder &b, Location loc, Value v) {
    Type i64 = b.getI64Type();
    Type t = v.getType();
    if (isa<MemRefType>(t)) {
      Value p = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, v);
      return arith::IndexCastUIOp::create(b, loc, i64, p);
    }
    if (t.isIndex())
      return arith::IndexCastOp::create(b, loc, i64, v);
    if (auto f = dyn_cast<FloatType>(t)) {
      Value bits = arith::BitcastOp::create(b, loc, b.getIntegerType(f.getWidth()), v);
      t = bits.getType();
      v = bits;
    }
    auto i = cast<IntegerType>(t);
    if (i.getWidth() == 64)
      return v;
    if (i.getWidth() > 64)
      return arith::TruncIOp::create(b, loc, i64, v);
    return arith::ExtUIOp::create(b, loc, i64, v);
  }

  void runOnOperation() override {
    ModuleOp top = getOperation();
    MLIRContext *ctx = &getContext();
    // Kernel ids in the order of the gpu.modules and their functions.
    llvm::DenseMap<Operation *, unsigned> ids;
    std::string table;
    unsigned maxArgs = 1;
    for (gpu::GPUModuleOp m : top.getOps<gpu::GPUModuleOp>()) {
      for (gpu::GPUFuncOp f : m.getOps<gpu::GPUFuncOp>()) {
        if (!f.isKernel())
          continue;
        auto known = f.getKnownBlockSize();
        if (!known || known->size() != 3) {
          f.emitError("GPU lowering: kernel without a static block size");
          return signalPassFailure();
        }
        std::string kinds;
        for (Type t : f.getArgumentTypes())
          if (failed(argKind(t, kinds))) {
            f.emitError("GPU lowering: unsupported kernel argument type ") << t;
            return signalPassFailure();
          }
        ids[f] = ids.size();
        maxArgs = std::max<unsigned>(maxArgs, f.getNumArguments());
        table += m.getName().str() + " " + f.getName().str() + " " +
                 std::to_string((*known)[0]) + " " + std::to_string((*known)[1]) + " " +
                 std::to_string((*known)[2]) + " " + kinds + "\n";
      }
    }
    // A header line first, so that the table is never an empty string (a model without
    // kernels: only views of its inputs).
    top->setAttr("kiln.kernels", StringAttr::get(ctx, "kiln-kernels\n" + table));

    SmallVector<gpu::LaunchFuncOp> launches;
    top.walk([&](gpu::LaunchFuncOp l) { launches.push_back(l); });
    if (launches.empty())
      return;
    auto slots = MemRefType::get({(int64_t)maxArgs}, IntegerType::get(ctx, 64));
    Type idx = IndexType::get(ctx);
    auto fnType = FunctionType::get(ctx, {IntegerType::get(ctx, 32), idx, idx, idx, slots}, {});
    if (!top.lookupSymbol<func::FuncOp>(kLaunchFn)) {
      OpBuilder b = OpBuilder::atBlockBegin(top.getBody());
      auto decl = func::FuncOp::create(b, top.getLoc(), kLaunchFn, fnType);
      decl.setPrivate();
    }
    llvm::DenseMap<Operation *, Value> argBlocks;  // per host function
    for (gpu::LaunchFuncOp l : launches) {
      auto f = top.lookupSymbol<gpu::GPUFuncOp>(l.getKernel());
      if (!f || !ids.count(f)) {
        l.emitError("GPU lowering: launch of an unknown kernel");
        return signalPassFailure();
      }
      if (!l.getAsyncDependencies().empty() || l.getAsyncToken() ||
          l.getDynamicSharedMemorySize() || l.hasClusterSize()) {
        l.emitError("GPU lowering: asynchronous, clustered or dynamic-shared-memory launches "
                    "are not supported");
        return signalPassFailure();
      }
      auto known = *f.getKnownBlockSize();
      gpu::KernelDim3 bs = l.getBlockSizeOperandValues();
      int64_t given[3] = {-1, -1, -1};
      Value dims[3] = {bs.x, bs.y, bs.z};
      for (int d = 0; d < 3; ++d)
        if (auto c = getConstantIntValue(dims[d]))
          given[d] = *c;
      if (given[0] != known[0] || given[1] != known[1] || given[2] != known[2]) {
        l.emitError("GPU lowering: launch block size differs from the kernel's");
        return signalPassFailure();
      }
      auto host = l->getParentOfType<func::FuncOp>();
      Location loc = l.getLoc();
      Value &args = argBlocks[host];
      if (!args) {
        OpBuilder b = OpBuilder::atBlockBegin(&host.getBody().front());
        args = memref::AllocaOp::create(b, loc, slots);
      }
      OpBuilder b(l);
      for (auto [k, operand] : llvm::enumerate(l.getKernelOperands())) {
        Value slot = toSlot(b, loc, operand);
        Value at = arith::ConstantIndexOp::create(b, loc, k);
        memref::StoreOp::create(b, loc, slot, args, ValueRange{at});
      }
      Value id = arith::ConstantIntOp::create(b, loc, ids[f], 32);
      gpu::KernelDim3 g = l.getGridSizeOperandValues();
      func::CallOp::create(b, loc, kLaunchFn, TypeRange{}, ValueRange{id, g.x, g.y, g.z, args});
      l.erase();
    }
  }
};

bool registered = false;

} // namespace
} // namespace kiln

/// Registers the passes above with MLIR's global pass registry (idempotent).
extern "C" void kiln_gpu_register_passes(void) {
  if (kiln::registered)
    return;
  kiln::registered = true;
  PassRegistration<kiln::ConstantsPass>();
  PassRegistration<kiln::ParallelFirstPass>();
  PassRegistration<kiln::TileContractionsPass>();
  PassRegistration<kiln::ReductionTreesPass>();
  PassRegistration<kiln::SpirvWorkgroupPass>();
  PassRegistration<kiln::CopiesPass>();
  PassRegistration<kiln::MapLoopsPass>();
  PassRegistration<kiln::SerialPass>();
  PassRegistration<kiln::MergeModulesPass>();
  PassRegistration<kiln::SpirvAbiPass>();
  PassRegistration<kiln::MathPass>();
  PassRegistration<kiln::NestSpirvPass>();
  PassRegistration<kiln::LoopResultsPass>();
  PassRegistration<kiln::LlvmIntrinsicsPass>();
  PassRegistration<kiln::DemoteF64Pass>();
  PassRegistration<kiln::Bf16StoragePass>();
  PassRegistration<kiln::LaunchAbiPass>();
}

/// Calls `sink(data, "constants", bytes, length)` with the bytes `kiln-gpu-constants` appended
/// to the weights (when it moved any), then removes the attribute. Returns 1 when it did.
extern "C" int kiln_gpu_take_constants(MlirOperation module,
                                       void (*sink)(void *, const char *, const char *, size_t),
                                       void *data) {
  Operation *top = unwrap(module);
  auto blob = top->getAttrOfType<StringAttr>("kiln.constants");
  if (!blob)
    return 0;
  StringRef bytes = blob.getValue();
  sink(data, "constants", bytes.data(), bytes.size());
  top->removeAttr("kiln.constants");
  return 1;
}

/// Calls `sink(data, module name, object bytes, length)` for the first object of every
/// gpu.binary in `module`, then erases the binaries. Returns the number of binaries.
extern "C" int kiln_gpu_take_binaries(MlirOperation module,
                                      void (*sink)(void *, const char *, const char *, size_t),
                                      void *data) {
  Operation *top = unwrap(module);
  SmallVector<gpu::BinaryOp> binaries;
  top->walk([&](gpu::BinaryOp b) { binaries.push_back(b); });
  int n = 0;
  for (gpu::BinaryOp bin : binaries) {
    ArrayAttr objects = bin.getObjects();
    if (objects.empty())
      continue;
    auto object = dyn_cast<gpu::ObjectAttr>(objects[0]);
    if (!object)
      continue;
    std::string name = bin.getName().str();
    StringRef bytes = object.getObject().getValue();
    sink(data, name.c_str(), bytes.data(), bytes.size());
    ++n;
  }
  for (gpu::BinaryOp bin : binaries)
    bin.erase();
  return n;
}
