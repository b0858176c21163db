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
  llvm.module_flags [#llvm.mlir.module_flag<error, "wchar_size", 4 : i32>, #llvm.mlir.module_flag<min, "PIC Level", 2 : i32>]
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
    %9 = llvm.mlir.constant(0 : i8) : i8
    %10 = llvm.mlir.constant(40 : i64) : i64
    %11 = llvm.mlir.zero : !llvm.ptr
    %12 = llvm.mlir.constant(4 : i64) : i64
    %13 = llvm.mlir.constant(2 : i32) : i32
    %14 = llvm.mlir.constant(17 : i64) : i64
    %15 = llvm.mlir.constant(796704537621 : i64) : i64
    %16 = llvm.mlir.constant(255 : i64) : i64
    %17 = llvm.mlir.addressof @par_cache : !llvm.ptr
    %18 = llvm.mlir.constant(1000000000 : i64) : i64
    %19 = llvm.alloca %0 x !llvm.struct<"struct.timespec", (i64, i64)> {alignment = 8 : i64} : (i32) -> !llvm.ptr
    %20 = llvm.alloca %0 x !llvm.struct<"struct.timespec", (i64, i64)> {alignment = 8 : i64} : (i32) -> !llvm.ptr
    %21 = llvm.alloca %0 x i32 {alignment = 4 : i64} : (i32) -> !llvm.ptr
    %22 = llvm.alloca %0 x i32 {alignment = 4 : i64} : (i32) -> !llvm.ptr
    %23 = llvm.alloca %0 x i32 {alignment = 4 : i64} : (i32) -> !llvm.ptr
    %24 = llvm.alloca %0 x i32 {alignment = 4 : i64} : (i32) -> !llvm.ptr
    %25 = llvm.alloca %0 x !llvm.struct<"struct.region", (ptr, i32, array<3 x ptr>)> {alignment = 8 : i64} : (i32) -> !llvm.ptr
    %26 = llvm.alloca %0 x !llvm.struct<"struct.frame", (i32, i32, ptr, ptr, i64, i64)> {alignment = 8 : i64} : (i32) -> !llvm.ptr
    %27 = llvm.icmp "ugt" %arg1, %1 : i32
    llvm.cond_br %27, ^bb1, ^bb2
  ^bb1:  // pred: ^bb0
    llvm.intr.trap
    llvm.unreachable
  ^bb2:  // pred: ^bb0
    llvm.intr.lifetime.start %25 : !llvm.ptr
    llvm.store %arg2, %25 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    %28 = llvm.getelementptr inbounds|nuw %25[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %arg1, %28 {alignment = 8 : i64} : i32, !llvm.ptr
    %29 = llvm.getelementptr inbounds|nuw %25[%3] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %4, %29 {alignment = 4 : i64} : i32, !llvm.ptr
    %30 = llvm.getelementptr inbounds|nuw %25[%5] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %arg3, %30 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    %31 = llvm.getelementptr inbounds|nuw %25[%6] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %arg4, %31 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    %32 = llvm.getelementptr inbounds|nuw %25[%7] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %arg5, %32 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    %33 = "llvm.intr.threadlocal.address"(%8) : (!llvm.ptr) -> !llvm.ptr
    %34 = llvm.load %33 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    llvm.intr.lifetime.start %26 : !llvm.ptr
    "llvm.intr.memset"(%26, %9, %10) <{arg_attrs = [{llvm.align = 8 : i64, llvm.dereferenceable = 40 : i64, llvm.nonnull, llvm.noundef}, {}, {}], isVolatile = false}> : (!llvm.ptr, i8, i64) -> ()
    llvm.store %0, %26 {alignment = 8 : i64} : i32, !llvm.ptr
    %35 = llvm.icmp "eq" %34, %11 : !llvm.ptr
    llvm.cond_br %35, ^bb7, ^bb3
  ^bb3:  // pred: ^bb2
    %36 = llvm.load %34 {alignment = 8 : i64} : !llvm.ptr -> i32
    %37 = llvm.icmp "eq" %36, %4 : i32
    llvm.cond_br %37, ^bb4, ^bb7
  ^bb4:  // pred: ^bb3
    %38 = llvm.getelementptr inbounds|nuw %34[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %39 = llvm.load %38 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %40 = llvm.icmp "eq" %39, %11 : !llvm.ptr
    llvm.cond_br %40, ^bb7, ^bb5
  ^bb5:  // pred: ^bb4
    %41 = llvm.getelementptr inbounds|nuw %39[%12] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %42 = llvm.load %41 {alignment = 4 : i64} : !llvm.ptr -> i32
    %43 = llvm.icmp "ult" %42, %13 : i32
    llvm.cond_br %43, ^bb7, ^bb6
  ^bb6:  // pred: ^bb5
    %44 = llvm.getelementptr inbounds|nuw %39[%5] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %45 = llvm.load %44 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %46 = llvm.icmp "eq" %45, %11 : !llvm.ptr
    llvm.cond_br %46, ^bb7, ^bb14
  ^bb7:  // 5 preds: ^bb2, ^bb3, ^bb4, ^bb5, ^bb6
    llvm.store %26, %33 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    llvm.intr.lifetime.start %23 : !llvm.ptr
    llvm.store %4, %23 {alignment = 4 : i64} : i32, !llvm.ptr
    llvm.intr.lifetime.start %24 : !llvm.ptr
    llvm.store %4, %24 {alignment = 4 : i64} : i32, !llvm.ptr
    llvm.switch %arg1 : i32, ^bb12 [
      0: ^bb8,
      1: ^bb9,
      2: ^bb10,
      3: ^bb11
    ]
  ^bb8:  // pred: ^bb7
    llvm.call %arg2(%23, %24) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}) -> ()
    llvm.br ^bb13
  ^bb9:  // pred: ^bb7
    llvm.call %arg2(%23, %24, %arg3) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb13
  ^bb10:  // pred: ^bb7
    llvm.call %arg2(%23, %24, %arg3, %arg4) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb13
  ^bb11:  // pred: ^bb7
    llvm.call %arg2(%23, %24, %arg3, %arg4, %arg5) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb13
  ^bb12:  // 2 preds: ^bb7, ^bb16
    llvm.unreachable
  ^bb13:  // 4 preds: ^bb8, ^bb9, ^bb10, ^bb11
    llvm.intr.lifetime.end %24 : !llvm.ptr
    llvm.intr.lifetime.end %23 : !llvm.ptr
    llvm.store %34, %33 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    llvm.br ^bb23
  ^bb14:  // pred: ^bb6
    %47 = llvm.ptrtoint %arg2 : !llvm.ptr to i64
    %48 = llvm.lshr %47, %14 : i64
    %49 = llvm.xor %48, %47 : i64
    %50 = llvm.mul %49, %15 : i64
    %51 = llvm.lshr %50, %7 : i64
    %52 = llvm.and %51, %16 : i64
    %53 = llvm.getelementptr inbounds|nuw %17[%52] : (!llvm.ptr, i64) -> !llvm.ptr, !llvm.struct<"struct.slot", (ptr, i32, i32, i64)>
    %54 = llvm.load %53 atomic monotonic {alignment = 8 : i64} : !llvm.ptr -> i64
    %55 = llvm.inttoptr %54 : i64 to !llvm.ptr
    %56 = llvm.icmp "eq" %arg2, %55 : !llvm.ptr
    llvm.cond_br %56, ^bb15, ^bb22
  ^bb15:  // pred: ^bb14
    %57 = llvm.getelementptr inbounds|nuw %53[%3] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %58 = llvm.load %57 atomic monotonic {alignment = 4 : i64} : !llvm.ptr -> i32
    %59 = llvm.icmp "eq" %58, %4 : i32
    llvm.cond_br %59, ^bb22, ^bb16
  ^bb16:  // pred: ^bb15
    llvm.store %13, %26 {alignment = 8 : i64} : i32, !llvm.ptr
    %60 = llvm.getelementptr inbounds|nuw %26[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %39, %60 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    %61 = llvm.getelementptr inbounds|nuw %26[%5] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %25, %61 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    llvm.store %26, %33 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    llvm.intr.lifetime.start %21 : !llvm.ptr
    llvm.store %4, %21 {alignment = 4 : i64} : i32, !llvm.ptr
    llvm.intr.lifetime.start %22 : !llvm.ptr
    llvm.store %4, %22 {alignment = 4 : i64} : i32, !llvm.ptr
    llvm.switch %arg1 : i32, ^bb12 [
      0: ^bb17,
      1: ^bb18,
      2: ^bb19,
      3: ^bb20
    ]
  ^bb17:  // pred: ^bb16
    llvm.call %arg2(%21, %22) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}) -> ()
    llvm.br ^bb21
  ^bb18:  // pred: ^bb16
    llvm.call %arg2(%21, %22, %arg3) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb21
  ^bb19:  // pred: ^bb16
    llvm.call %arg2(%21, %22, %arg3, %arg4) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb21
  ^bb20:  // pred: ^bb16
    llvm.call %arg2(%21, %22, %arg3, %arg4, %arg5) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> ()
    llvm.br ^bb21
  ^bb21:  // 4 preds: ^bb17, ^bb18, ^bb19, ^bb20
    llvm.intr.lifetime.end %22 : !llvm.ptr
    llvm.intr.lifetime.end %21 : !llvm.ptr
    llvm.store %34, %33 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    llvm.br ^bb23
  ^bb22:  // 2 preds: ^bb14, ^bb15
    llvm.store %26, %33 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    llvm.intr.lifetime.start %20 : !llvm.ptr
    %62 = llvm.call @clock_gettime(%0, %20) {no_unwind} : (i32 {llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}) -> i32
    %63 = llvm.load %20 {alignment = 8 : i64} : !llvm.ptr -> i64
    %64 = llvm.getelementptr inbounds|nuw %20[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %65 = llvm.load %64 {alignment = 8 : i64} : !llvm.ptr -> i64
    llvm.intr.lifetime.end %20 : !llvm.ptr
    llvm.call fastcc @par_call_microtask(%25) : (!llvm.ptr {llvm.nonnull, llvm.noundef}) -> ()
    llvm.intr.lifetime.start %19 : !llvm.ptr
    %66 = llvm.call @clock_gettime(%0, %19) {no_unwind} : (i32 {llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}) -> i32
    %67 = llvm.load %19 {alignment = 8 : i64} : !llvm.ptr -> i64
    %68 = llvm.getelementptr inbounds|nuw %19[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %69 = llvm.load %68 {alignment = 8 : i64} : !llvm.ptr -> i64
    llvm.intr.lifetime.end %19 : !llvm.ptr
    llvm.store %34, %33 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    %70 = llvm.sub %67, %63 : i64
    %71 = llvm.mul %70, %18 : i64
    %72 = llvm.sub %69, %65 : i64
    %73 = llvm.add %72, %71 : i64
    llvm.call fastcc @par_record(%53, %arg2, %73) : (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.noundef}, i64 {llvm.noundef}) -> ()
    llvm.br ^bb23
  ^bb23:  // 3 preds: ^bb13, ^bb21, ^bb22
    llvm.intr.lifetime.end %26 : !llvm.ptr
    llvm.intr.lifetime.end %25 : !llvm.ptr
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
  llvm.func internal unnamed_addr fastcc @par_record(%arg0: !llvm.ptr {llvm.nocapture, llvm.noundef}, %arg1: !llvm.ptr {llvm.noundef}, %arg2: i64 {llvm.noundef}) attributes {dso_local, no_unwind, passthrough = ["nofree", ["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]]} {
    %0 = llvm.mlir.constant(1 : i32) : i32
    %1 = llvm.mlir.constant(8 : i64) : i64
    %2 = llvm.mlir.constant(0 : i32) : i32
    %3 = llvm.mlir.constant(12 : i64) : i64
    %4 = llvm.mlir.constant(16 : i64) : i64
    %5 = llvm.mlir.constant(-1 : i64) : i64
    %6 = llvm.mlir.constant(-2 : i32) : i32
    %7 = llvm.mlir.constant(-3 : i32) : i32
    %8 = llvm.mlir.addressof @par_min_ns : !llvm.ptr
    %9 = llvm.mlir.addressof @".str" : !llvm.ptr
    %10 = llvm.mlir.zero : !llvm.ptr
    %11 = llvm.mlir.constant(30000 : i64) : i64
    %12 = llvm.mlir.constant(0 : i8) : i8
    %13 = llvm.mlir.constant(10 : i32) : i32
    %14 = llvm.mlir.constant(1000000000 : i64) : i64
    %15 = llvm.mlir.constant(false) : i1
    %16 = llvm.mlir.constant(1000 : i64) : i64
    %17 = llvm.alloca %0 x !llvm.ptr {alignment = 8 : i64} : (i32) -> !llvm.ptr
    %18 = llvm.load %arg0 atomic monotonic {alignment = 8 : i64} : !llvm.ptr -> i64
    %19 = llvm.inttoptr %18 : i64 to !llvm.ptr
    %20 = llvm.icmp "eq" %arg1, %19 : !llvm.ptr
    llvm.cond_br %20, ^bb2, ^bb1
  ^bb1:  // pred: ^bb0
    %21 = llvm.ptrtoint %arg1 : !llvm.ptr to i64
    llvm.store %21, %arg0 atomic monotonic {alignment = 8 : i64} : i64, !llvm.ptr
    %22 = llvm.getelementptr inbounds|nuw %arg0[%1] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %2, %22 atomic monotonic {alignment = 8 : i64} : i32, !llvm.ptr
    %23 = llvm.getelementptr inbounds|nuw %arg0[%3] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %2, %23 atomic monotonic {alignment = 4 : i64} : i32, !llvm.ptr
    %24 = llvm.getelementptr inbounds|nuw %arg0[%4] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %5, %24 atomic monotonic {alignment = 8 : i64} : i64, !llvm.ptr
    llvm.br ^bb2
  ^bb2:  // 2 preds: ^bb0, ^bb1
    %25 = llvm.getelementptr inbounds|nuw %arg0[%4] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %26 = llvm.load %25 atomic monotonic {alignment = 8 : i64} : !llvm.ptr -> i64
    %27 = llvm.icmp "ult" %arg2, %26 : i64
    llvm.cond_br %27, ^bb3, ^bb4
  ^bb3:  // pred: ^bb2
    llvm.store %arg2, %25 atomic monotonic {alignment = 8 : i64} : i64, !llvm.ptr
    llvm.br ^bb4
  ^bb4:  // 2 preds: ^bb2, ^bb3
    %28 = llvm.getelementptr inbounds|nuw %arg0[%1] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %29 = llvm.atomicrmw add %28, %0 monotonic {alignment = 8 : i64} : !llvm.ptr, i32
    %30 = llvm.add %29, %6 : i32
    %31 = llvm.icmp "ult" %30, %7 : i32
    llvm.cond_br %31, ^bb5, ^bb11
  ^bb5:  // pred: ^bb4
    %32 = llvm.load %25 atomic monotonic {alignment = 8 : i64} : !llvm.ptr -> i64
    %33 = llvm.getelementptr inbounds|nuw %arg0[%3] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %34 = llvm.load %8 atomic monotonic {alignment = 8 : i64} : !llvm.ptr -> i64
    %35 = llvm.icmp "sgt" %34, %5 : i64
    llvm.cond_br %35, ^bb10(%34 : i64), ^bb6
  ^bb6:  // pred: ^bb5
    %36 = llvm.call tail @getenv(%9) {memory_effects = #llvm.memory_effects<other = read, argMem = read, inaccessibleMem = read, errnoMem = read, targetMem0 = read, targetMem1 = read>, no_unwind} : (!llvm.ptr {llvm.nonnull, llvm.noundef}) -> !llvm.ptr
    %37 = llvm.icmp "eq" %36, %10 : !llvm.ptr
    llvm.cond_br %37, ^bb9(%11 : i64), ^bb7
  ^bb7:  // pred: ^bb6
    %38 = llvm.load %36 {alignment = 1 : i64} : !llvm.ptr -> i8
    %39 = llvm.icmp "eq" %38, %12 : i8
    llvm.cond_br %39, ^bb9(%11 : i64), ^bb8
  ^bb8:  // pred: ^bb7
    llvm.intr.lifetime.start %17 : !llvm.ptr
    %40 = llvm.call @strtoll(%36, %17, %13) {no_unwind} : (!llvm.ptr {llvm.nonnull, llvm.noundef}, !llvm.ptr {llvm.nonnull, llvm.noundef}, i32 {llvm.noundef}) -> i64
    %41 = llvm.load %17 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %42 = llvm.load %41 {alignment = 1 : i64} : !llvm.ptr -> i8
    %43 = llvm.icmp "eq" %42, %12 : i8
    %44 = llvm.icmp "ult" %40, %14 : i64
    %45 = llvm.select %43, %44, %15 : i1, i1
    %46 = llvm.mul %40, %16 overflow<nsw, nuw> : i64
    %47 = llvm.select %45, %46, %11 : i1, i64
    llvm.intr.lifetime.end %17 : !llvm.ptr
    llvm.br ^bb9(%47 : i64)
  ^bb9(%48: i64):  // 3 preds: ^bb6, ^bb7, ^bb8
    llvm.store %48, %8 atomic monotonic {alignment = 8 : i64} : i64, !llvm.ptr
    llvm.br ^bb10(%48 : i64)
  ^bb10(%49: i64):  // 2 preds: ^bb5, ^bb9
    %50 = llvm.icmp "uge" %32, %49 : i64
    %51 = llvm.zext %50 : i1 to i32
    llvm.store %51, %33 atomic monotonic {alignment = 4 : i64} : i32, !llvm.ptr
    llvm.br ^bb11
  ^bb11:  // 2 preds: ^bb4, ^bb10
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
  llvm.func local_unnamed_addr @clock_gettime(i32 {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> i32 attributes {no_unwind, passthrough = [["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]]}
  llvm.func local_unnamed_addr @getenv(!llvm.ptr {llvm.nocapture, llvm.noundef}) -> (!llvm.ptr {llvm.noundef}) attributes {memory_effects = #llvm.memory_effects<other = read, argMem = read, inaccessibleMem = read, errnoMem = read, targetMem0 = read, targetMem1 = read>, no_unwind, passthrough = ["nofree", ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]]}
  llvm.func local_unnamed_addr @strtoll(!llvm.ptr {llvm.noundef, llvm.readonly}, !llvm.ptr {llvm.nocapture, llvm.noundef}, i32 {llvm.noundef}) -> i64 attributes {no_unwind, passthrough = ["mustprogress", "nocallback", "nofree", ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]], will_return}
