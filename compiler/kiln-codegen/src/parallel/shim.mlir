// Generated from shim.c by gen-shim.sh. Do not edit.
  llvm.mlir.global internal thread_local unnamed_addr @par_current() {addr_space = 0 : i32, alignment = 8 : i64, dso_local} : !llvm.ptr {
    %0 = llvm.mlir.zero : !llvm.ptr
    llvm.return %0 : !llvm.ptr
  }
  llvm.mlir.global internal @par_cache() {addr_space = 0 : i32, alignment = 16 : i64, dso_local} : !llvm.array<256 x struct<"struct.slot", (ptr, i32, i32, i64)>> {
    %0 = llvm.mlir.constant(0 : i64) : i64
    %1 = llvm.mlir.constant(0 : i32) : i32
    %2 = llvm.mlir.zero : !llvm.ptr
    %3 = llvm.mlir.zero : !llvm.struct<"struct.slot", (ptr, i32, i32, i64)>
    %4 = llvm.mlir.zero : !llvm.array<256 x struct<"struct.slot", (ptr, i32, i32, i64)>>
    llvm.return %4 : !llvm.array<256 x struct<"struct.slot", (ptr, i32, i32, i64)>>
  }
  llvm.mlir.global internal unnamed_addr @par_min_ns(-1 : i64) {addr_space = 0 : i32, alignment = 8 : i64, dso_local} : i64
  llvm.mlir.global private unnamed_addr constant @".str"("KILN_PARALLEL_MIN_US\00") {addr_space = 0 : i32, alignment = 1 : i64, dso_local}
  llvm.func hidden local_unnamed_addr @kiln_par_enter(%arg0: !llvm.ptr {llvm.noundef}, %arg1: !llvm.ptr {llvm.noundef}) -> !llvm.ptr attributes {dso_local, memory_effects = #llvm.memory_effects<other = readwrite, argMem = write, inaccessibleMem = none, errnoMem = readwrite, targetMem0 = none, targetMem1 = none>, no_unwind, passthrough = ["mustprogress", "nofree", "norecurse", "nosync", ["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]], will_return} {
    %0 = llvm.mlir.addressof @par_current : !llvm.ptr
    %1 = llvm.mlir.constant(0 : i32) : i32
    %2 = llvm.mlir.constant(4 : i64) : i64
    %3 = llvm.mlir.constant(8 : i64) : i64
    %4 = llvm.mlir.constant(16 : i64) : i64
    %5 = llvm.mlir.constant(0 : i8) : i8
    %6 = llvm.mlir.constant(24 : i64) : i64
    %7 = "llvm.intr.threadlocal.address"(%0) : (!llvm.ptr) -> !llvm.ptr
    %8 = llvm.load %7 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    llvm.store %1, %arg1 {alignment = 8 : i64} : i32, !llvm.ptr
    %9 = llvm.getelementptr inbounds|nuw %arg1[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %1, %9 {alignment = 4 : i64} : i32, !llvm.ptr
    %10 = llvm.getelementptr inbounds|nuw %arg1[%3] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %arg0, %10 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    %11 = llvm.getelementptr inbounds|nuw %arg1[%4] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    "llvm.intr.memset"(%11, %5, %6) <{arg_attrs = [{llvm.align = 8 : i64, llvm.dereferenceable = 24 : i64, llvm.nonnull, llvm.noundef}, {}, {}], isVolatile = false}> : (!llvm.ptr, i8, i64) -> ()
    llvm.store %arg1, %7 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    llvm.return %8 : !llvm.ptr
  }
  llvm.func hidden local_unnamed_addr @kiln_par_leave(%arg0: !llvm.ptr {llvm.noundef}) attributes {dso_local, memory_effects = #llvm.memory_effects<other = write, argMem = none, inaccessibleMem = none, errnoMem = write, targetMem0 = none, targetMem1 = none>, no_unwind, passthrough = ["mustprogress", "nofree", "norecurse", "nosync", ["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]], will_return} {
    %0 = llvm.mlir.addressof @par_current : !llvm.ptr
    %1 = "llvm.intr.threadlocal.address"(%0) : (!llvm.ptr) -> !llvm.ptr
    llvm.store %arg0, %1 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    llvm.return
  }
  llvm.func hidden local_unnamed_addr @__kmpc_fork_call(%arg0: !llvm.ptr {llvm.nocapture, llvm.noundef, llvm.readnone}, %arg1: i32 {llvm.noundef}, %arg2: !llvm.ptr {llvm.noundef}, %arg3: !llvm.ptr {llvm.noundef}, %arg4: !llvm.ptr {llvm.noundef}, %arg5: !llvm.ptr {llvm.noundef}) attributes {dso_local, no_unwind, passthrough = [["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]]} {
    %0 = llvm.mlir.constant(1 : i32) : i32
    %1 = llvm.mlir.constant(3 : i32) : i32
    %2 = llvm.mlir.constant(8 : i64) : i64
    %3 = llvm.mlir.constant(12 : i64) : i64
    %4 = llvm.mlir.constant(0 : i32) : i32
    %5 = llvm.mlir.constant(16 : i64) : i64
    %6 = llvm.mlir.constant(24 : i64) : i64
    %7 = llvm.mlir.constant(32 : i64) : i64
    %8 = llvm.mlir.addressof @par_current : !llvm.ptr
    %9 = llvm.mlir.zero : !llvm.ptr
    %10 = llvm.mlir.constant(0 : i8) : i8
    %11 = llvm.mlir.constant(40 : i64) : i64
    %12 = llvm.mlir.constant(4 : i64) : i64
    %13 = llvm.mlir.constant(2 : i32) : i32
    %14 = llvm.mlir.constant(17 : i64) : i64
    %15 = llvm.mlir.constant(796704537621 : i64) : i64
    %16 = llvm.mlir.constant(255 : i64) : i64
    %17 = llvm.mlir.addressof @par_cache : !llvm.ptr
    %18 = llvm.mlir.constant(1000000000 : i64) : i64
    %19 = llvm.mlir.constant(-1 : i64) : i64
    %20 = llvm.mlir.constant(-2 : i32) : i32
    %21 = llvm.mlir.constant(-3 : i32) : i32
    %22 = llvm.mlir.addressof @par_min_ns : !llvm.ptr
    %23 = llvm.mlir.addressof @".str" : !llvm.ptr
    %24 = llvm.mlir.constant(5000 : i64) : i64
    %25 = llvm.mlir.constant(10 : i32) : i32
    %26 = llvm.mlir.constant(false) : i1
    %27 = llvm.mlir.constant(1000 : i64) : i64
    %28 = llvm.alloca %0 x !llvm.ptr {alignment = 8 : i64} : (i32) -> !llvm.ptr
    %29 = llvm.alloca %0 x !llvm.struct<"struct.timespec", (i64, i64)> {alignment = 8 : i64} : (i32) -> !llvm.ptr
    %30 = llvm.alloca %0 x i32 {alignment = 4 : i64} : (i32) -> !llvm.ptr
    %31 = llvm.alloca %0 x i32 {alignment = 4 : i64} : (i32) -> !llvm.ptr
    %32 = llvm.alloca %0 x !llvm.struct<"struct.timespec", (i64, i64)> {alignment = 8 : i64} : (i32) -> !llvm.ptr
    %33 = llvm.alloca %0 x i32 {alignment = 4 : i64} : (i32) -> !llvm.ptr
    %34 = llvm.alloca %0 x i32 {alignment = 4 : i64} : (i32) -> !llvm.ptr
    %35 = llvm.alloca %0 x i32 {alignment = 4 : i64} : (i32) -> !llvm.ptr
    %36 = llvm.alloca %0 x i32 {alignment = 4 : i64} : (i32) -> !llvm.ptr
    %37 = llvm.alloca %0 x i32 {alignment = 4 : i64} : (i32) -> !llvm.ptr
    %38 = llvm.alloca %0 x i32 {alignment = 4 : i64} : (i32) -> !llvm.ptr
    %39 = llvm.alloca %0 x !llvm.struct<"struct.region", (ptr, i32, array<3 x ptr>)> {alignment = 8 : i64} : (i32) -> !llvm.ptr
    %40 = llvm.alloca %0 x !llvm.struct<"struct.frame", (i32, i32, ptr, ptr, i64, i64)> {alignment = 8 : i64} : (i32) -> !llvm.ptr
    %41 = llvm.alloca %0 x !llvm.struct<"struct.frame", (i32, i32, ptr, ptr, i64, i64)> {alignment = 8 : i64} : (i32) -> !llvm.ptr
    %42 = llvm.icmp "ugt" %arg1, %1 : i32
    llvm.cond_br %42, ^bb1, ^bb2
  ^bb1:  // pred: ^bb0
    llvm.intr.trap
    llvm.unreachable
  ^bb2:  // pred: ^bb0
    llvm.intr.lifetime.start %39 : !llvm.ptr
    llvm.store %arg2, %39 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    %43 = llvm.getelementptr inbounds|nuw %39[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %arg1, %43 {alignment = 8 : i64} : i32, !llvm.ptr
    %44 = llvm.getelementptr inbounds|nuw %39[%3] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %4, %44 {alignment = 4 : i64} : i32, !llvm.ptr
    %45 = llvm.getelementptr inbounds|nuw %39[%5] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %arg3, %45 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    %46 = llvm.getelementptr inbounds|nuw %39[%6] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %arg4, %46 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    %47 = llvm.getelementptr inbounds|nuw %39[%7] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %arg5, %47 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    %48 = "llvm.intr.threadlocal.address"(%8) : (!llvm.ptr) -> !llvm.ptr
    %49 = llvm.load %48 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %50 = llvm.icmp "eq" %49, %9 : !llvm.ptr
    llvm.cond_br %50, ^bb3, ^bb10
  ^bb3:  // pred: ^bb2
    llvm.intr.lifetime.start %37 : !llvm.ptr
    llvm.store %4, %37 {alignment = 4 : i64} : i32, !llvm.ptr
    llvm.intr.lifetime.start %38 : !llvm.ptr
    llvm.store %4, %38 {alignment = 4 : i64} : i32, !llvm.ptr
    llvm.switch %arg1 : i32, ^bb8 [
      0: ^bb4,
      1: ^bb5,
      2: ^bb6,
      3: ^bb7
    ]
  ^bb4:  // pred: ^bb3
    llvm.call %arg2(%37, %38) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}) -> ()
    llvm.br ^bb9
  ^bb5:  // pred: ^bb3
    llvm.call %arg2(%37, %38, %arg3) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb9
  ^bb6:  // pred: ^bb3
    llvm.call %arg2(%37, %38, %arg3, %arg4) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb9
  ^bb7:  // pred: ^bb3
    llvm.call %arg2(%37, %38, %arg3, %arg4, %arg5) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb9
  ^bb8:  // 4 preds: ^bb3, ^bb11, ^bb20, ^bb31
    llvm.unreachable
  ^bb9:  // 4 preds: ^bb4, ^bb5, ^bb6, ^bb7
    llvm.intr.lifetime.end %38 : !llvm.ptr
    llvm.intr.lifetime.end %37 : !llvm.ptr
    llvm.br ^bb47
  ^bb10:  // pred: ^bb2
    %51 = llvm.load %49 {alignment = 8 : i64} : !llvm.ptr -> i32
    %52 = llvm.icmp "eq" %51, %4 : i32
    llvm.cond_br %52, ^bb17, ^bb11
  ^bb11:  // pred: ^bb10
    llvm.intr.lifetime.start %40 : !llvm.ptr
    "llvm.intr.memset"(%40, %10, %11) <{arg_attrs = [{llvm.align = 8 : i64, llvm.dereferenceable = 40 : i64, llvm.nonnull, llvm.noundef}, {}, {}], isVolatile = false}> : (!llvm.ptr, i8, i64) -> ()
    llvm.store %0, %40 {alignment = 8 : i64} : i32, !llvm.ptr
    llvm.store %40, %48 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    llvm.intr.lifetime.start %35 : !llvm.ptr
    llvm.store %4, %35 {alignment = 4 : i64} : i32, !llvm.ptr
    llvm.intr.lifetime.start %36 : !llvm.ptr
    llvm.store %4, %36 {alignment = 4 : i64} : i32, !llvm.ptr
    llvm.switch %arg1 : i32, ^bb8 [
      0: ^bb12,
      1: ^bb13,
      2: ^bb14,
      3: ^bb15
    ]
  ^bb12:  // pred: ^bb11
    llvm.call %arg2(%35, %36) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}) -> ()
    llvm.br ^bb16
  ^bb13:  // pred: ^bb11
    llvm.call %arg2(%35, %36, %arg3) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb16
  ^bb14:  // pred: ^bb11
    llvm.call %arg2(%35, %36, %arg3, %arg4) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb16
  ^bb15:  // pred: ^bb11
    llvm.call %arg2(%35, %36, %arg3, %arg4, %arg5) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb16
  ^bb16:  // 4 preds: ^bb12, ^bb13, ^bb14, ^bb15
    llvm.intr.lifetime.end %36 : !llvm.ptr
    llvm.intr.lifetime.end %35 : !llvm.ptr
    llvm.store %49, %48 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    llvm.intr.lifetime.end %40 : !llvm.ptr
    llvm.br ^bb47
  ^bb17:  // pred: ^bb10
    %53 = llvm.getelementptr inbounds|nuw %49[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %54 = llvm.load %53 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %55 = llvm.icmp "eq" %54, %9 : !llvm.ptr
    llvm.cond_br %55, ^bb20, ^bb18
  ^bb18:  // pred: ^bb17
    %56 = llvm.getelementptr inbounds|nuw %54[%12] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %57 = llvm.load %56 {alignment = 4 : i64} : !llvm.ptr -> i32
    %58 = llvm.icmp "ult" %57, %13 : i32
    llvm.cond_br %58, ^bb20, ^bb19
  ^bb19:  // pred: ^bb18
    %59 = llvm.getelementptr inbounds|nuw %54[%5] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %60 = llvm.load %59 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %61 = llvm.icmp "eq" %60, %9 : !llvm.ptr
    llvm.cond_br %61, ^bb20, ^bb26
  ^bb20:  // 3 preds: ^bb17, ^bb18, ^bb19
    llvm.intr.lifetime.start %33 : !llvm.ptr
    llvm.store %4, %33 {alignment = 4 : i64} : i32, !llvm.ptr
    llvm.intr.lifetime.start %34 : !llvm.ptr
    llvm.store %4, %34 {alignment = 4 : i64} : i32, !llvm.ptr
    llvm.switch %arg1 : i32, ^bb8 [
      0: ^bb21,
      1: ^bb22,
      2: ^bb23,
      3: ^bb24
    ]
  ^bb21:  // pred: ^bb20
    llvm.call %arg2(%33, %34) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}) -> ()
    llvm.br ^bb25
  ^bb22:  // pred: ^bb20
    llvm.call %arg2(%33, %34, %arg3) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb25
  ^bb23:  // pred: ^bb20
    llvm.call %arg2(%33, %34, %arg3, %arg4) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb25
  ^bb24:  // pred: ^bb20
    llvm.call %arg2(%33, %34, %arg3, %arg4, %arg5) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb25
  ^bb25:  // 4 preds: ^bb21, ^bb22, ^bb23, ^bb24
    llvm.intr.lifetime.end %34 : !llvm.ptr
    llvm.intr.lifetime.end %33 : !llvm.ptr
    llvm.br ^bb47
  ^bb26:  // pred: ^bb19
    %62 = llvm.ptrtoint %arg2 : !llvm.ptr to i64
    %63 = llvm.lshr %62, %14 : i64
    %64 = llvm.xor %63, %62 : i64
    %65 = llvm.mul %64, %15 : i64
    %66 = llvm.lshr %65, %7 : i64
    %67 = llvm.and %66, %16 : i64
    %68 = llvm.getelementptr inbounds|nuw %17[%67] : (!llvm.ptr, i64) -> !llvm.ptr, !llvm.struct<"struct.slot", (ptr, i32, i32, i64)>
    %69 = llvm.load %68 atomic monotonic {alignment = 8 : i64} : !llvm.ptr -> i64
    %70 = llvm.inttoptr %69 : i64 to !llvm.ptr
    %71 = llvm.icmp "eq" %arg2, %70 : !llvm.ptr
    llvm.cond_br %71, ^bb27, ^bb31
  ^bb27:  // pred: ^bb26
    %72 = llvm.getelementptr inbounds|nuw %68[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %73 = llvm.load %72 atomic monotonic {alignment = 8 : i64} : !llvm.ptr -> i32
    %74 = llvm.icmp "ugt" %73, %13 : i32
    llvm.cond_br %74, ^bb28, ^bb31
  ^bb28:  // pred: ^bb27
    %75 = llvm.getelementptr inbounds|nuw %68[%3] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %76 = llvm.load %75 atomic monotonic {alignment = 4 : i64} : !llvm.ptr -> i32
    %77 = llvm.icmp "eq" %76, %4 : i32
    llvm.cond_br %77, ^bb30, ^bb29
  ^bb29:  // pred: ^bb28
    llvm.intr.lifetime.start %41 : !llvm.ptr
    llvm.store %13, %41 {alignment = 8 : i64} : i32, !llvm.ptr
    %78 = llvm.getelementptr inbounds|nuw %41[%12] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %4, %78 {alignment = 4 : i64} : i32, !llvm.ptr
    %79 = llvm.getelementptr inbounds|nuw %41[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %54, %79 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    %80 = llvm.getelementptr inbounds|nuw %41[%5] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %39, %80 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    %81 = llvm.getelementptr inbounds|nuw %41[%6] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    "llvm.intr.memset"(%81, %10, %5) <{arg_attrs = [{llvm.align = 8 : i64, llvm.dereferenceable = 16 : i64, llvm.nonnull, llvm.noundef}, {}, {}], isVolatile = false}> : (!llvm.ptr, i8, i64) -> ()
    llvm.store %41, %48 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    llvm.call fastcc @par_call_microtask(%39) : (!llvm.ptr {llvm.nonnull, llvm.noundef}) -> ()
    llvm.store %49, %48 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    llvm.intr.lifetime.end %41 : !llvm.ptr
    llvm.br ^bb47
  ^bb30:  // pred: ^bb28
    llvm.call fastcc @par_call_microtask(%39) : (!llvm.ptr {llvm.nonnull, llvm.noundef}) -> ()
    llvm.br ^bb47
  ^bb31:  // 2 preds: ^bb26, ^bb27
    llvm.intr.lifetime.start %32 : !llvm.ptr
    %82 = llvm.call @clock_gettime(%0, %32) {no_unwind} : (i32 {llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}) -> i32
    %83 = llvm.load %32 {alignment = 8 : i64} : !llvm.ptr -> i64
    %84 = llvm.getelementptr inbounds|nuw %32[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %85 = llvm.load %84 {alignment = 8 : i64} : !llvm.ptr -> i64
    llvm.intr.lifetime.end %32 : !llvm.ptr
    llvm.intr.lifetime.start %30 : !llvm.ptr
    llvm.store %4, %30 {alignment = 4 : i64} : i32, !llvm.ptr
    llvm.intr.lifetime.start %31 : !llvm.ptr
    llvm.store %4, %31 {alignment = 4 : i64} : i32, !llvm.ptr
    llvm.switch %arg1 : i32, ^bb8 [
      0: ^bb32,
      1: ^bb33,
      2: ^bb34,
      3: ^bb35
    ]
  ^bb32:  // pred: ^bb31
    llvm.call %arg2(%30, %31) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}) -> ()
    llvm.br ^bb36
  ^bb33:  // pred: ^bb31
    llvm.call %arg2(%30, %31, %arg3) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb36
  ^bb34:  // pred: ^bb31
    llvm.call %arg2(%30, %31, %arg3, %arg4) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb36
  ^bb35:  // pred: ^bb31
    llvm.call %arg2(%30, %31, %arg3, %arg4, %arg5) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb36
  ^bb36:  // 4 preds: ^bb32, ^bb33, ^bb34, ^bb35
    llvm.intr.lifetime.end %31 : !llvm.ptr
    llvm.intr.lifetime.end %30 : !llvm.ptr
    llvm.intr.lifetime.start %29 : !llvm.ptr
    %86 = llvm.call @clock_gettime(%0, %29) {no_unwind} : (i32 {llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}) -> i32
    %87 = llvm.load %29 {alignment = 8 : i64} : !llvm.ptr -> i64
    %88 = llvm.getelementptr inbounds|nuw %29[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %89 = llvm.load %88 {alignment = 8 : i64} : !llvm.ptr -> i64
    llvm.intr.lifetime.end %29 : !llvm.ptr
    %90 = llvm.sub %87, %83 : i64
    %91 = llvm.mul %90, %18 : i64
    %92 = llvm.sub %89, %85 : i64
    %93 = llvm.add %92, %91 : i64
    %94 = llvm.load %68 atomic monotonic {alignment = 8 : i64} : !llvm.ptr -> i64
    %95 = llvm.inttoptr %94 : i64 to !llvm.ptr
    %96 = llvm.icmp "eq" %arg2, %95 : !llvm.ptr
    llvm.cond_br %96, ^bb38, ^bb37
  ^bb37:  // pred: ^bb36
    llvm.store %62, %68 atomic monotonic {alignment = 8 : i64} : i64, !llvm.ptr
    %97 = llvm.getelementptr inbounds|nuw %68[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %4, %97 atomic monotonic {alignment = 8 : i64} : i32, !llvm.ptr
    %98 = llvm.getelementptr inbounds|nuw %68[%3] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %4, %98 atomic monotonic {alignment = 4 : i64} : i32, !llvm.ptr
    %99 = llvm.getelementptr inbounds|nuw %68[%5] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %19, %99 atomic monotonic {alignment = 8 : i64} : i64, !llvm.ptr
    llvm.br ^bb38
  ^bb38:  // 2 preds: ^bb36, ^bb37
    %100 = llvm.getelementptr inbounds|nuw %68[%5] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %101 = llvm.load %100 atomic monotonic {alignment = 8 : i64} : !llvm.ptr -> i64
    %102 = llvm.icmp "ult" %93, %101 : i64
    llvm.cond_br %102, ^bb39, ^bb40
  ^bb39:  // pred: ^bb38
    llvm.store %93, %100 atomic monotonic {alignment = 8 : i64} : i64, !llvm.ptr
    llvm.br ^bb40
  ^bb40:  // 2 preds: ^bb38, ^bb39
    %103 = llvm.getelementptr inbounds|nuw %68[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %104 = llvm.atomicrmw add %103, %0 monotonic {alignment = 8 : i64} : !llvm.ptr, i32
    %105 = llvm.add %104, %20 : i32
    %106 = llvm.icmp "ult" %105, %21 : i32
    llvm.cond_br %106, ^bb41, ^bb47
  ^bb41:  // pred: ^bb40
    %107 = llvm.load %100 atomic monotonic {alignment = 8 : i64} : !llvm.ptr -> i64
    %108 = llvm.getelementptr inbounds|nuw %68[%3] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %109 = llvm.load %22 atomic monotonic {alignment = 8 : i64} : !llvm.ptr -> i64
    %110 = llvm.icmp "sgt" %109, %19 : i64
    llvm.cond_br %110, ^bb46(%109 : i64), ^bb42
  ^bb42:  // pred: ^bb41
    %111 = llvm.call @getenv(%23) {memory_effects = #llvm.memory_effects<other = read, argMem = read, inaccessibleMem = read, errnoMem = read, targetMem0 = read, targetMem1 = read>, no_unwind} : (!llvm.ptr {llvm.nonnull, llvm.noundef}) -> !llvm.ptr
    %112 = llvm.icmp "eq" %111, %9 : !llvm.ptr
    llvm.cond_br %112, ^bb45(%24 : i64), ^bb43
  ^bb43:  // pred: ^bb42
    %113 = llvm.load %111 {alignment = 1 : i64} : !llvm.ptr -> i8
    %114 = llvm.icmp "eq" %113, %10 : i8
    llvm.cond_br %114, ^bb45(%24 : i64), ^bb44
  ^bb44:  // pred: ^bb43
    llvm.intr.lifetime.start %28 : !llvm.ptr
    %115 = llvm.call @strtoll(%111, %28, %25) {no_unwind} : (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, i32 {llvm.noundef}) -> i64
    %116 = llvm.load %28 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %117 = llvm.load %116 {alignment = 1 : i64} : !llvm.ptr -> i8
    %118 = llvm.icmp "eq" %117, %10 : i8
    %119 = llvm.icmp "ult" %115, %18 : i64
    %120 = llvm.select %118, %119, %26 : i1, i1
    %121 = llvm.mul %115, %27 overflow<nsw, nuw> : i64
    %122 = llvm.select %120, %121, %24 : i1, i64
    llvm.intr.lifetime.end %28 : !llvm.ptr
    llvm.br ^bb45(%122 : i64)
  ^bb45(%123: i64):  // 3 preds: ^bb42, ^bb43, ^bb44
    llvm.store %123, %22 atomic monotonic {alignment = 8 : i64} : i64, !llvm.ptr
    llvm.br ^bb46(%123 : i64)
  ^bb46(%124: i64):  // 2 preds: ^bb41, ^bb45
    %125 = llvm.icmp "uge" %107, %124 : i64
    %126 = llvm.zext %125 : i1 to i32
    llvm.store %126, %108 atomic monotonic {alignment = 4 : i64} : i32, !llvm.ptr
    llvm.br ^bb47
  ^bb47:  // 7 preds: ^bb9, ^bb16, ^bb25, ^bb29, ^bb30, ^bb40, ^bb46
    llvm.intr.lifetime.end %39 : !llvm.ptr
    llvm.return
  }
  llvm.func internal unnamed_addr fastcc @par_call_microtask(%arg0: !llvm.ptr {llvm.nocapture, llvm.noundef, llvm.readonly}) attributes {dso_local, no_unwind, passthrough = [["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]]} {
    %0 = llvm.mlir.constant(1 : i32) : i32
    %1 = llvm.mlir.constant(0 : i32) : i32
    %2 = llvm.mlir.constant(8 : i64) : i64
    %3 = llvm.mlir.constant(16 : i64) : i64
    %4 = llvm.mlir.constant(24 : i64) : i64
    %5 = llvm.mlir.constant(32 : i64) : i64
    %6 = llvm.alloca %0 x i32 {alignment = 4 : i64} : (i32) -> !llvm.ptr
    %7 = llvm.alloca %0 x i32 {alignment = 4 : i64} : (i32) -> !llvm.ptr
    llvm.intr.lifetime.start %6 : !llvm.ptr
    llvm.store %1, %6 {alignment = 4 : i64} : i32, !llvm.ptr
    llvm.intr.lifetime.start %7 : !llvm.ptr
    llvm.store %1, %7 {alignment = 4 : i64} : i32, !llvm.ptr
    %8 = llvm.getelementptr inbounds|nuw %arg0[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %9 = llvm.load %8 {alignment = 8 : i64} : !llvm.ptr -> i32
    llvm.switch %9 : i32, ^bb5 [
      0: ^bb1,
      1: ^bb2,
      2: ^bb3,
      3: ^bb4
    ]
  ^bb1:  // pred: ^bb0
    %10 = llvm.load %arg0 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    llvm.call %10(%6, %7) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}) -> ()
    llvm.br ^bb6
  ^bb2:  // pred: ^bb0
    %11 = llvm.load %arg0 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %12 = llvm.getelementptr inbounds|nuw %arg0[%3] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %13 = llvm.load %12 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    llvm.call %11(%6, %7, %13) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb6
  ^bb3:  // pred: ^bb0
    %14 = llvm.load %arg0 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %15 = llvm.getelementptr inbounds|nuw %arg0[%3] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %16 = llvm.load %15 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %17 = llvm.getelementptr inbounds|nuw %arg0[%4] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %18 = llvm.load %17 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    llvm.call %14(%6, %7, %16, %18) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb6
  ^bb4:  // pred: ^bb0
    %19 = llvm.load %arg0 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %20 = llvm.getelementptr inbounds|nuw %arg0[%3] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %21 = llvm.load %20 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %22 = llvm.getelementptr inbounds|nuw %arg0[%4] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %23 = llvm.load %22 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %24 = llvm.getelementptr inbounds|nuw %arg0[%5] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %25 = llvm.load %24 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    llvm.call %19(%6, %7, %21, %23, %25) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb6
  ^bb5:  // pred: ^bb0
    llvm.intr.trap
    llvm.unreachable
  ^bb6:  // 4 preds: ^bb1, ^bb2, ^bb3, ^bb4
    llvm.intr.lifetime.end %7 : !llvm.ptr
    llvm.intr.lifetime.end %6 : !llvm.ptr
    llvm.return
  }
  llvm.func hidden local_unnamed_addr @__kmpc_global_thread_num(%arg0: !llvm.ptr {llvm.nocapture, llvm.noundef, llvm.readnone}) -> (i32 {llvm.noundef}) attributes {dso_local, memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none, errnoMem = none, targetMem0 = none, targetMem1 = none>, no_unwind, passthrough = ["mustprogress", "nofree", "norecurse", "nosync", ["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]], will_return} {
    %0 = llvm.mlir.constant(0 : i32) : i32
    llvm.return %0 : i32
  }
  llvm.func hidden local_unnamed_addr @__kmpc_for_static_init_8u(%arg0: !llvm.ptr {llvm.nocapture, llvm.noundef, llvm.readnone}, %arg1: i32 {llvm.noundef}, %arg2: i32 {llvm.noundef}, %arg3: !llvm.ptr {llvm.noundef, llvm.writeonly}, %arg4: !llvm.ptr {llvm.nocapture, llvm.noundef}, %arg5: !llvm.ptr {llvm.nocapture, llvm.noundef}, %arg6: !llvm.ptr {llvm.nocapture, llvm.noundef, llvm.writeonly}, %arg7: i64 {llvm.noundef}, %arg8: i64 {llvm.noundef}) attributes {dso_local, no_unwind, passthrough = [["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]]} {
    %0 = llvm.mlir.addressof @par_current : !llvm.ptr
    %1 = llvm.mlir.constant(1 : i64) : i64
    %2 = llvm.mlir.constant(0 : i64) : i64
    %3 = llvm.mlir.zero : !llvm.ptr
    %4 = llvm.mlir.constant(2 : i32) : i32
    %5 = llvm.mlir.constant(4 : i64) : i64
    %6 = llvm.mlir.constant(0 : i32) : i32
    %7 = llvm.mlir.constant(1 : i32) : i32
    %8 = llvm.mlir.constant(24 : i64) : i64
    %9 = llvm.mlir.constant(32 : i64) : i64
    %10 = llvm.mlir.constant(-1 : i64) : i64
    %11 = llvm.mlir.constant(8 : i64) : i64
    %12 = llvm.mlir.constant(16 : i64) : i64
    %13 = llvm.mlir.addressof @par_run_chunk : !llvm.ptr
    %14 = "llvm.intr.threadlocal.address"(%0) : (!llvm.ptr) -> !llvm.ptr
    %15 = llvm.load %14 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %16 = llvm.load %arg4 {alignment = 8 : i64} : !llvm.ptr -> i64
    %17 = llvm.load %arg5 {alignment = 8 : i64} : !llvm.ptr -> i64
    %18 = llvm.intr.smax(%arg7, %1) : (i64, i64) -> i64
    %19 = llvm.icmp "ult" %17, %16 : i64
    llvm.cond_br %19, ^bb2(%2 : i64), ^bb1
  ^bb1:  // pred: ^bb0
    %20 = llvm.sub %17, %16 overflow<nuw> : i64
    %21 = llvm.udiv %20, %18 : i64
    %22 = llvm.add %21, %1 : i64
    llvm.br ^bb2(%22 : i64)
  ^bb2(%23: i64):  // 2 preds: ^bb0, ^bb1
    %24 = llvm.icmp "eq" %15, %3 : !llvm.ptr
    llvm.cond_br %24, ^bb4, ^bb3
  ^bb3:  // pred: ^bb2
    %25 = llvm.load %15 {alignment = 8 : i64} : !llvm.ptr -> i32
    %26 = llvm.icmp "ult" %25, %4 : i32
    llvm.cond_br %26, ^bb4, ^bb5
  ^bb4:  // 2 preds: ^bb2, ^bb3
    %27 = llvm.icmp "eq" %arg3, %3 : !llvm.ptr
    llvm.cond_br %27, ^bb14, ^bb13(%7 : i32)
  ^bb5:  // pred: ^bb3
    %28 = llvm.getelementptr inbounds|nuw %15[%5] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %29 = llvm.load %28 {alignment = 4 : i64} : !llvm.ptr -> i32
    %30 = llvm.icmp "eq" %29, %6 : i32
    llvm.cond_br %30, ^bb7, ^bb6
  ^bb6:  // pred: ^bb5
    llvm.intr.trap
    llvm.unreachable
  ^bb7:  // pred: ^bb5
    llvm.store %7, %28 {alignment = 4 : i64} : i32, !llvm.ptr
    %31 = llvm.icmp "eq" %25, %4 : i32
    llvm.cond_br %31, ^bb8, ^bb11
  ^bb8:  // pred: ^bb7
    %32 = llvm.icmp "ugt" %23, %1 : i64
    llvm.cond_br %32, ^bb9, ^bb10
  ^bb9:  // pred: ^bb8
    %33 = llvm.getelementptr inbounds|nuw %15[%11] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %34 = llvm.load %33 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %35 = llvm.getelementptr inbounds|nuw %34[%12] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %36 = llvm.load %35 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %37 = llvm.getelementptr inbounds|nuw %34[%11] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %38 = llvm.load %37 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %39 = llvm.getelementptr inbounds|nuw %15[%12] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %40 = llvm.load %39 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    llvm.call tail %36(%38, %23, %13, %40) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.noundef}, i64 {llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.store %1, %arg4 {alignment = 8 : i64} : i64, !llvm.ptr
    llvm.store %2, %arg5 {alignment = 8 : i64} : i64, !llvm.ptr
    %41 = llvm.icmp "eq" %arg3, %3 : !llvm.ptr
    llvm.cond_br %41, ^bb14, ^bb13(%6 : i32)
  ^bb10:  // pred: ^bb8
    %42 = llvm.icmp "eq" %arg3, %3 : !llvm.ptr
    llvm.cond_br %42, ^bb14, ^bb13(%7 : i32)
  ^bb11:  // pred: ^bb7
    %43 = llvm.getelementptr inbounds|nuw %15[%8] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %44 = llvm.load %43 {alignment = 8 : i64} : !llvm.ptr -> i64
    %45 = llvm.mul %44, %18 : i64
    %46 = llvm.add %45, %16 : i64
    llvm.store %46, %arg4 {alignment = 8 : i64} : i64, !llvm.ptr
    %47 = llvm.getelementptr inbounds|nuw %15[%9] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %48 = llvm.load %47 {alignment = 8 : i64} : !llvm.ptr -> i64
    %49 = llvm.add %48, %10 overflow<nsw> : i64
    %50 = llvm.mul %49, %18 : i64
    %51 = llvm.add %50, %16 : i64
    llvm.store %51, %arg5 {alignment = 8 : i64} : i64, !llvm.ptr
    %52 = llvm.icmp "eq" %arg3, %3 : !llvm.ptr
    llvm.cond_br %52, ^bb14, ^bb12
  ^bb12:  // pred: ^bb11
    %53 = llvm.load %47 {alignment = 8 : i64} : !llvm.ptr -> i64
    %54 = llvm.icmp "eq" %53, %23 : i64
    %55 = llvm.zext %54 : i1 to i32
    llvm.br ^bb13(%55 : i32)
  ^bb13(%56: i32):  // 4 preds: ^bb4, ^bb9, ^bb10, ^bb12
    llvm.store %56, %arg3 {alignment = 4 : i64} : i32, !llvm.ptr
    llvm.br ^bb14
  ^bb14:  // 5 preds: ^bb4, ^bb9, ^bb10, ^bb11, ^bb13
    %57 = llvm.mul %23, %18 : i64
    llvm.store %57, %arg6 {alignment = 8 : i64} : i64, !llvm.ptr
    llvm.return
  }
  llvm.func internal @par_run_chunk(%arg0: !llvm.ptr {llvm.nocapture, llvm.noundef, llvm.readonly}, %arg1: i64 {llvm.noundef}, %arg2: i64 {llvm.noundef}) attributes {dso_local, no_unwind, passthrough = [["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]]} {
    %0 = llvm.mlir.constant(1 : i32) : i32
    %1 = llvm.mlir.constant(3 : i32) : i32
    %2 = llvm.mlir.constant(4 : i64) : i64
    %3 = llvm.mlir.constant(24 : i64) : i64
    %4 = llvm.mlir.constant(0 : i8) : i8
    %5 = llvm.mlir.constant(20 : i64) : i64
    %6 = llvm.mlir.constant(32 : i64) : i64
    %7 = llvm.mlir.addressof @par_current : !llvm.ptr
    %8 = llvm.mlir.constant(0 : i32) : i32
    %9 = llvm.mlir.constant(8 : i64) : i64
    %10 = llvm.mlir.constant(16 : i64) : i64
    %11 = llvm.alloca %0 x i32 {alignment = 4 : i64} : (i32) -> !llvm.ptr
    %12 = llvm.alloca %0 x i32 {alignment = 4 : i64} : (i32) -> !llvm.ptr
    %13 = llvm.alloca %0 x !llvm.struct<"struct.frame", (i32, i32, ptr, ptr, i64, i64)> {alignment = 8 : i64} : (i32) -> !llvm.ptr
    llvm.intr.lifetime.start %13 : !llvm.ptr
    llvm.store %1, %13 {alignment = 8 : i64} : i32, !llvm.ptr
    %14 = llvm.getelementptr inbounds|nuw %13[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %15 = llvm.getelementptr inbounds|nuw %13[%3] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    "llvm.intr.memset"(%14, %4, %5) <{arg_attrs = [{llvm.align = 4 : i64, llvm.dereferenceable = 20 : i64, llvm.nonnull, llvm.noundef}, {}, {}], isVolatile = false}> : (!llvm.ptr, i8, i64) -> ()
    llvm.store %arg1, %15 {alignment = 8 : i64} : i64, !llvm.ptr
    %16 = llvm.getelementptr inbounds|nuw %13[%6] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %arg2, %16 {alignment = 8 : i64} : i64, !llvm.ptr
    %17 = "llvm.intr.threadlocal.address"(%7) : (!llvm.ptr) -> !llvm.ptr
    %18 = llvm.load %17 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    llvm.store %13, %17 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    llvm.intr.lifetime.start %11 : !llvm.ptr
    llvm.store %8, %11 {alignment = 4 : i64} : i32, !llvm.ptr
    llvm.intr.lifetime.start %12 : !llvm.ptr
    llvm.store %8, %12 {alignment = 4 : i64} : i32, !llvm.ptr
    %19 = llvm.getelementptr inbounds|nuw %arg0[%9] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %20 = llvm.load %19 {alignment = 8 : i64} : !llvm.ptr -> i32
    llvm.switch %20 : i32, ^bb5 [
      0: ^bb1,
      1: ^bb2,
      2: ^bb3,
      3: ^bb4
    ]
  ^bb1:  // pred: ^bb0
    %21 = llvm.load %arg0 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    llvm.call %21(%11, %12) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}) -> ()
    llvm.br ^bb6
  ^bb2:  // pred: ^bb0
    %22 = llvm.load %arg0 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %23 = llvm.getelementptr inbounds|nuw %arg0[%10] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %24 = llvm.load %23 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    llvm.call %22(%11, %12, %24) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb6
  ^bb3:  // pred: ^bb0
    %25 = llvm.load %arg0 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %26 = llvm.getelementptr inbounds|nuw %arg0[%10] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %27 = llvm.load %26 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %28 = llvm.getelementptr inbounds|nuw %arg0[%3] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %29 = llvm.load %28 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    llvm.call %25(%11, %12, %27, %29) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb6
  ^bb4:  // pred: ^bb0
    %30 = llvm.load %arg0 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %31 = llvm.getelementptr inbounds|nuw %arg0[%10] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %32 = llvm.load %31 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %33 = llvm.getelementptr inbounds|nuw %arg0[%3] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %34 = llvm.load %33 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %35 = llvm.getelementptr inbounds|nuw %arg0[%6] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %36 = llvm.load %35 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    llvm.call %30(%11, %12, %32, %34, %36) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb6
  ^bb5:  // pred: ^bb0
    llvm.intr.trap
    llvm.unreachable
  ^bb6:  // 4 preds: ^bb1, ^bb2, ^bb3, ^bb4
    llvm.intr.lifetime.end %12 : !llvm.ptr
    llvm.intr.lifetime.end %11 : !llvm.ptr
    llvm.store %18, %17 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    llvm.intr.lifetime.end %13 : !llvm.ptr
    llvm.return
  }
  llvm.func hidden local_unnamed_addr @__kmpc_for_static_fini(%arg0: !llvm.ptr {llvm.nocapture, llvm.noundef, llvm.readnone}, %arg1: i32 {llvm.noundef}) attributes {dso_local, memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none, errnoMem = none, targetMem0 = none, targetMem1 = none>, no_unwind, passthrough = ["mustprogress", "nofree", "norecurse", "nosync", ["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]], will_return} {
    llvm.return
  }
  llvm.func hidden local_unnamed_addr @__kmpc_barrier(%arg0: !llvm.ptr {llvm.nocapture, llvm.noundef, llvm.readnone}, %arg1: i32 {llvm.noundef}) attributes {dso_local, memory_effects = #llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none, errnoMem = none, targetMem0 = none, targetMem1 = none>, no_unwind, passthrough = ["mustprogress", "nofree", "norecurse", "nosync", ["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]], will_return} {
    llvm.return
  }
  llvm.func hidden local_unnamed_addr @kiln_par_threads() -> (i64 {llvm.range = #llvm.constant_range<i64, 1, 4294967296>}) attributes {dso_local, memory_effects = #llvm.memory_effects<other = read, argMem = read, inaccessibleMem = none, errnoMem = read, targetMem0 = none, targetMem1 = none>, no_unwind, passthrough = ["mustprogress", "nofree", "norecurse", "nosync", ["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]], will_return} {
    %0 = llvm.mlir.addressof @par_current : !llvm.ptr
    %1 = llvm.mlir.zero : !llvm.ptr
    %2 = llvm.mlir.constant(1 : i64) : i64
    %3 = llvm.mlir.constant(0 : i32) : i32
    %4 = llvm.mlir.constant(8 : i64) : i64
    %5 = llvm.mlir.constant(16 : i64) : i64
    %6 = llvm.mlir.constant(4 : i64) : i64
    %7 = llvm.mlir.constant(1 : i32) : i32
    %8 = "llvm.intr.threadlocal.address"(%0) : (!llvm.ptr) -> !llvm.ptr
    %9 = llvm.load %8 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %10 = llvm.icmp "eq" %9, %1 : !llvm.ptr
    llvm.cond_br %10, ^bb5(%2 : i64), ^bb1
  ^bb1:  // pred: ^bb0
    %11 = llvm.load %9 {alignment = 8 : i64} : !llvm.ptr -> i32
    %12 = llvm.icmp "eq" %11, %3 : i32
    llvm.cond_br %12, ^bb2, ^bb5(%2 : i64)
  ^bb2:  // pred: ^bb1
    %13 = llvm.getelementptr inbounds|nuw %9[%4] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %14 = llvm.load %13 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %15 = llvm.icmp "eq" %14, %1 : !llvm.ptr
    llvm.cond_br %15, ^bb5(%2 : i64), ^bb3
  ^bb3:  // pred: ^bb2
    %16 = llvm.getelementptr inbounds|nuw %14[%5] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %17 = llvm.load %16 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %18 = llvm.icmp "eq" %17, %1 : !llvm.ptr
    llvm.cond_br %18, ^bb5(%2 : i64), ^bb4
  ^bb4:  // pred: ^bb3
    %19 = llvm.getelementptr inbounds|nuw %14[%6] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %20 = llvm.load %19 {alignment = 4 : i64} : !llvm.ptr -> i32
    %21 = llvm.intr.umax(%20, %7) : (i32, i32) -> i32
    %22 = llvm.zext %21 : i32 to i64
    llvm.br ^bb5(%22 : i64)
  ^bb5(%23: i64):  // 5 preds: ^bb0, ^bb1, ^bb2, ^bb3, ^bb4
    llvm.return %23 : i64
  }
  llvm.func hidden local_unnamed_addr @kiln_par_min_work() -> (i64 {llvm.range = #llvm.constant_range<i64, 0, 63999999936001>}) attributes {dso_local, no_unwind, passthrough = ["nofree", ["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]]} {
    %0 = llvm.mlir.constant(1 : i32) : i32
    %1 = llvm.mlir.addressof @par_min_ns : !llvm.ptr
    %2 = llvm.mlir.constant(-1 : i64) : i64
    %3 = llvm.mlir.addressof @".str" : !llvm.ptr
    %4 = llvm.mlir.zero : !llvm.ptr
    %5 = llvm.mlir.constant(5000 : i64) : i64
    %6 = llvm.mlir.constant(0 : i8) : i8
    %7 = llvm.mlir.constant(10 : i32) : i32
    %8 = llvm.mlir.constant(1000000000 : i64) : i64
    %9 = llvm.mlir.constant(false) : i1
    %10 = llvm.mlir.constant(1000 : i64) : i64
    %11 = llvm.mlir.constant(6 : i64) : i64
    %12 = llvm.alloca %0 x !llvm.ptr {alignment = 8 : i64} : (i32) -> !llvm.ptr
    %13 = llvm.load %1 atomic monotonic {alignment = 8 : i64} : !llvm.ptr -> i64
    %14 = llvm.icmp "sgt" %13, %2 : i64
    llvm.cond_br %14, ^bb5(%13 : i64), ^bb1
  ^bb1:  // pred: ^bb0
    %15 = llvm.call tail @getenv(%3) {memory_effects = #llvm.memory_effects<other = read, argMem = read, inaccessibleMem = read, errnoMem = read, targetMem0 = read, targetMem1 = read>, no_unwind} : (!llvm.ptr {llvm.nonnull, llvm.noundef}) -> !llvm.ptr
    %16 = llvm.icmp "eq" %15, %4 : !llvm.ptr
    llvm.cond_br %16, ^bb4(%5 : i64), ^bb2
  ^bb2:  // pred: ^bb1
    %17 = llvm.load %15 {alignment = 1 : i64} : !llvm.ptr -> i8
    %18 = llvm.icmp "eq" %17, %6 : i8
    llvm.cond_br %18, ^bb4(%5 : i64), ^bb3
  ^bb3:  // pred: ^bb2
    llvm.intr.lifetime.start %12 : !llvm.ptr
    %19 = llvm.call @strtoll(%15, %12, %7) {no_unwind} : (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, i32 {llvm.noundef}) -> i64
    %20 = llvm.load %12 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %21 = llvm.load %20 {alignment = 1 : i64} : !llvm.ptr -> i8
    %22 = llvm.icmp "eq" %21, %6 : i8
    %23 = llvm.icmp "ult" %19, %8 : i64
    %24 = llvm.select %22, %23, %9 : i1, i1
    %25 = llvm.mul %19, %10 overflow<nsw, nuw> : i64
    %26 = llvm.select %24, %25, %5 : i1, i64
    llvm.intr.lifetime.end %12 : !llvm.ptr
    llvm.br ^bb4(%26 : i64)
  ^bb4(%27: i64):  // 3 preds: ^bb1, ^bb2, ^bb3
    llvm.store %27, %1 atomic monotonic {alignment = 8 : i64} : i64, !llvm.ptr
    llvm.br ^bb5(%27 : i64)
  ^bb5(%28: i64):  // 2 preds: ^bb0, ^bb4
    %29 = llvm.shl %28, %11 overflow<nsw, nuw> : i64
    llvm.return %29 : i64
  }
  llvm.func hidden local_unnamed_addr @kiln_par_for(%arg0: i64 {llvm.noundef}, %arg1: !llvm.ptr {llvm.noundef}, %arg2: !llvm.ptr {llvm.noundef}) attributes {dso_local, no_unwind, passthrough = [["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]]} {
    %0 = llvm.mlir.constant(1 : i32) : i32
    %1 = llvm.mlir.constant(1 : i64) : i64
    %2 = llvm.mlir.addressof @par_current : !llvm.ptr
    %3 = llvm.mlir.zero : !llvm.ptr
    %4 = llvm.mlir.constant(0 : i32) : i32
    %5 = llvm.mlir.constant(8 : i64) : i64
    %6 = llvm.mlir.constant(16 : i64) : i64
    %7 = llvm.mlir.constant(4 : i64) : i64
    %8 = llvm.mlir.constant(2 : i32) : i32
    %9 = llvm.mlir.addressof @par_kernel_chunk : !llvm.ptr
    %10 = llvm.mlir.constant(0 : i64) : i64
    %11 = llvm.alloca %0 x !llvm.struct<"struct.par_job", (ptr, ptr)> {alignment = 8 : i64} : (i32) -> !llvm.ptr
    %12 = llvm.icmp "slt" %arg0, %1 : i64
    llvm.cond_br %12, ^bb8, ^bb1
  ^bb1:  // pred: ^bb0
    %13 = "llvm.intr.threadlocal.address"(%2) : (!llvm.ptr) -> !llvm.ptr
    %14 = llvm.load %13 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %15 = llvm.icmp "eq" %14, %3 : !llvm.ptr
    llvm.cond_br %15, ^bb6, ^bb2
  ^bb2:  // pred: ^bb1
    %16 = llvm.load %14 {alignment = 8 : i64} : !llvm.ptr -> i32
    %17 = llvm.icmp "eq" %16, %4 : i32
    llvm.cond_br %17, ^bb3, ^bb6
  ^bb3:  // pred: ^bb2
    %18 = llvm.getelementptr inbounds|nuw %14[%5] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %19 = llvm.load %18 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %20 = llvm.icmp "eq" %19, %3 : !llvm.ptr
    llvm.cond_br %20, ^bb6, ^bb4
  ^bb4:  // pred: ^bb3
    %21 = llvm.getelementptr inbounds|nuw %19[%6] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %22 = llvm.load %21 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %23 = llvm.icmp "eq" %22, %3 : !llvm.ptr
    llvm.cond_br %23, ^bb6, ^bb5
  ^bb5:  // pred: ^bb4
    %24 = llvm.getelementptr inbounds|nuw %19[%7] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %25 = llvm.load %24 {alignment = 4 : i64} : !llvm.ptr -> i32
    %26 = llvm.icmp "ult" %25, %8 : i32
    %27 = llvm.icmp "eq" %arg0, %1 : i64
    %28 = llvm.or %27, %26 : i1
    llvm.cond_br %28, ^bb6, ^bb7
  ^bb6:  // 5 preds: ^bb1, ^bb2, ^bb3, ^bb4, ^bb5
    llvm.call tail %arg1(%arg2, %10, %arg0) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.noundef}, i64 {llvm.noundef}, i64 {llvm.noundef}) -> ()
    llvm.br ^bb8
  ^bb7:  // pred: ^bb5
    llvm.intr.lifetime.start %11 : !llvm.ptr
    llvm.store %arg1, %11 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    %29 = llvm.getelementptr inbounds|nuw %11[%5] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %arg2, %29 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    %30 = llvm.getelementptr inbounds|nuw %19[%5] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %31 = llvm.load %30 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    llvm.call %22(%31, %arg0, %9, %11) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.noundef}, i64 {llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}) -> ()
    llvm.intr.lifetime.end %11 : !llvm.ptr
    llvm.br ^bb8
  ^bb8:  // 3 preds: ^bb0, ^bb6, ^bb7
    llvm.return
  }
  llvm.func internal @par_kernel_chunk(%arg0: !llvm.ptr {llvm.nocapture, llvm.noundef, llvm.readonly}, %arg1: i64 {llvm.noundef}, %arg2: i64 {llvm.noundef}) attributes {dso_local, no_unwind, passthrough = [["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]]} {
    %0 = llvm.mlir.constant(1 : i32) : i32
    %1 = llvm.mlir.constant(3 : i32) : i32
    %2 = llvm.mlir.constant(4 : i64) : i64
    %3 = llvm.mlir.constant(24 : i64) : i64
    %4 = llvm.mlir.constant(0 : i8) : i8
    %5 = llvm.mlir.constant(20 : i64) : i64
    %6 = llvm.mlir.constant(32 : i64) : i64
    %7 = llvm.mlir.addressof @par_current : !llvm.ptr
    %8 = llvm.mlir.constant(8 : i64) : i64
    %9 = llvm.alloca %0 x !llvm.struct<"struct.frame", (i32, i32, ptr, ptr, i64, i64)> {alignment = 8 : i64} : (i32) -> !llvm.ptr
    llvm.intr.lifetime.start %9 : !llvm.ptr
    llvm.store %1, %9 {alignment = 8 : i64} : i32, !llvm.ptr
    %10 = llvm.getelementptr inbounds|nuw %9[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %11 = llvm.getelementptr inbounds|nuw %9[%3] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    "llvm.intr.memset"(%10, %4, %5) <{arg_attrs = [{llvm.align = 4 : i64, llvm.dereferenceable = 20 : i64, llvm.nonnull, llvm.noundef}, {}, {}], isVolatile = false}> : (!llvm.ptr, i8, i64) -> ()
    llvm.store %arg1, %11 {alignment = 8 : i64} : i64, !llvm.ptr
    %12 = llvm.getelementptr inbounds|nuw %9[%6] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %arg2, %12 {alignment = 8 : i64} : i64, !llvm.ptr
    %13 = "llvm.intr.threadlocal.address"(%7) : (!llvm.ptr) -> !llvm.ptr
    %14 = llvm.load %13 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    llvm.store %9, %13 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    %15 = llvm.load %arg0 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %16 = llvm.getelementptr inbounds|nuw %arg0[%8] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %17 = llvm.load %16 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    llvm.call %15(%17, %arg1, %arg2) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.noundef}, i64 {llvm.noundef}, i64 {llvm.noundef}) -> ()
    llvm.store %14, %13 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    llvm.intr.lifetime.end %9 : !llvm.ptr
    llvm.return
  }
  llvm.func local_unnamed_addr @clock_gettime(i32 {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> i32 attributes {no_unwind, passthrough = [["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]]}
  llvm.func local_unnamed_addr @getenv(!llvm.ptr {llvm.nocapture, llvm.noundef}) -> (!llvm.ptr {llvm.noundef}) attributes {memory_effects = #llvm.memory_effects<other = read, argMem = read, inaccessibleMem = read, errnoMem = read, targetMem0 = read, targetMem1 = read>, no_unwind, passthrough = ["nofree", ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]]}
  llvm.func local_unnamed_addr @strtoll(!llvm.ptr {llvm.noundef, llvm.readonly}, !llvm.ptr {llvm.nocapture, llvm.noundef}, i32 {llvm.noundef}) -> i64 attributes {no_unwind, passthrough = ["mustprogress", "nocallback", "nofree", ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]], will_return}
