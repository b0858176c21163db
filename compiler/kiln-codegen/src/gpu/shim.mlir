// Generated from shim.c by gen-shim.sh. Do not edit.
  llvm.mlir.global internal thread_local unnamed_addr @gpu_current() {addr_space = 0 : i32, alignment = 8 : i64, dso_local} : !llvm.ptr {
    %0 = llvm.mlir.zero : !llvm.ptr
    llvm.return %0 : !llvm.ptr
  }
  llvm.func hidden local_unnamed_addr @kiln_gpu_enter(%arg0: !llvm.ptr {llvm.noundef, llvm.readonly}, %arg1: !llvm.ptr {llvm.noundef}) attributes {dso_local, memory_effects = #llvm.memory_effects<other = readwrite, argMem = readwrite, inaccessibleMem = none, errnoMem = readwrite, targetMem0 = none, targetMem1 = none>, no_unwind, passthrough = ["mustprogress", "nofree", "norecurse", "nosync", ["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]], will_return} {
    %0 = llvm.mlir.zero : !llvm.ptr
    %1 = llvm.mlir.constant(1 : i32) : i32
    %2 = llvm.mlir.constant(24 : i64) : i64
    %3 = llvm.mlir.constant(-2 : i32) : i32
    %4 = llvm.mlir.constant(0 : i32) : i32
    %5 = llvm.mlir.constant(8 : i64) : i64
    %6 = llvm.mlir.addressof @gpu_current : !llvm.ptr
    %7 = llvm.mlir.constant(16 : i64) : i64
    %8 = llvm.icmp "eq" %arg0, %0 : !llvm.ptr
    llvm.cond_br %8, ^bb3(%0 : !llvm.ptr), ^bb1
  ^bb1:  // pred: ^bb0
    %9 = llvm.load %arg0 {alignment = 8 : i64} : !llvm.ptr -> i32
    %10 = llvm.icmp "ugt" %9, %1 : i32
    llvm.cond_br %10, ^bb2, ^bb3(%0 : !llvm.ptr)
  ^bb2:  // pred: ^bb1
    %11 = llvm.getelementptr inbounds|nuw %arg0[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %12 = llvm.load %11 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    llvm.br ^bb3(%12 : !llvm.ptr)
  ^bb3(%13: !llvm.ptr):  // 3 preds: ^bb0, ^bb1, ^bb2
    llvm.store %13, %arg1 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    %14 = llvm.icmp "eq" %13, %0 : !llvm.ptr
    %15 = llvm.select %14, %3, %4 : i1, i32
    %16 = llvm.getelementptr inbounds|nuw %arg1[%5] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %15, %16 {alignment = 8 : i64} : i32, !llvm.ptr
    %17 = "llvm.intr.threadlocal.address"(%6) : (!llvm.ptr) -> !llvm.ptr
    %18 = llvm.load %17 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %19 = llvm.getelementptr inbounds|nuw %arg1[%7] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    llvm.store %18, %19 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    llvm.store %arg1, %17 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    llvm.return
  }
  llvm.func hidden local_unnamed_addr @kiln_gpu_leave(%arg0: !llvm.ptr {llvm.nocapture, llvm.noundef, llvm.readonly}) -> i32 attributes {dso_local, memory_effects = #llvm.memory_effects<other = write, argMem = read, inaccessibleMem = none, errnoMem = write, targetMem0 = none, targetMem1 = none>, no_unwind, passthrough = ["mustprogress", "nofree", "norecurse", "nosync", ["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]], will_return} {
    %0 = llvm.mlir.constant(16 : i64) : i64
    %1 = llvm.mlir.addressof @gpu_current : !llvm.ptr
    %2 = llvm.mlir.constant(8 : i64) : i64
    %3 = llvm.getelementptr inbounds|nuw %arg0[%0] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %4 = llvm.load %3 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %5 = "llvm.intr.threadlocal.address"(%1) : (!llvm.ptr) -> !llvm.ptr
    llvm.store %4, %5 {alignment = 8 : i64} : !llvm.ptr, !llvm.ptr
    %6 = llvm.getelementptr inbounds|nuw %arg0[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %7 = llvm.load %6 {alignment = 8 : i64} : !llvm.ptr -> i32
    llvm.return %7 : i32
  }
  llvm.func hidden local_unnamed_addr @kiln_gpu_launch(%arg0: i32 {llvm.noundef}, %arg1: i64 {llvm.noundef}, %arg2: i64 {llvm.noundef}, %arg3: i64 {llvm.noundef}, %arg4: !llvm.ptr {llvm.noundef}) attributes {dso_local, no_unwind, passthrough = [["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]]} {
    %0 = llvm.mlir.addressof @gpu_current : !llvm.ptr
    %1 = llvm.mlir.zero : !llvm.ptr
    %2 = llvm.mlir.constant(8 : i64) : i64
    %3 = llvm.mlir.constant(0 : i32) : i32
    %4 = "llvm.intr.threadlocal.address"(%0) : (!llvm.ptr) -> !llvm.ptr
    %5 = llvm.load %4 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %6 = llvm.icmp "eq" %5, %1 : !llvm.ptr
    llvm.cond_br %6, ^bb3, ^bb1
  ^bb1:  // pred: ^bb0
    %7 = llvm.getelementptr inbounds|nuw %5[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %8 = llvm.load %7 {alignment = 8 : i64} : !llvm.ptr -> i32
    %9 = llvm.icmp "eq" %8, %3 : i32
    llvm.cond_br %9, ^bb2, ^bb3
  ^bb2:  // pred: ^bb1
    %10 = llvm.load %5 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %11 = llvm.getelementptr inbounds|nuw %10[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %12 = llvm.load %11 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %13 = llvm.load %10 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %14 = llvm.call tail %12(%13, %arg0, %arg1, %arg2, %arg3, %arg4) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.noundef}, i32 {llvm.noundef}, i64 {llvm.noundef}, i64 {llvm.noundef}, i64 {llvm.noundef}, !llvm.ptr {llvm.noundef}) -> i32
    llvm.store %14, %7 {alignment = 8 : i64} : i32, !llvm.ptr
    llvm.br ^bb3
  ^bb3:  // 3 preds: ^bb0, ^bb1, ^bb2
    llvm.return
  }
  llvm.func hidden local_unnamed_addr @_mlir_memref_to_llvm_alloc(%arg0: i64 {llvm.noundef}) -> !llvm.ptr attributes {dso_local, no_unwind, passthrough = [["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]]} {
    %0 = llvm.mlir.addressof @gpu_current : !llvm.ptr
    %1 = llvm.mlir.zero : !llvm.ptr
    %2 = llvm.mlir.constant(8 : i64) : i64
    %3 = llvm.mlir.constant(0 : i32) : i32
    %4 = llvm.mlir.constant(16 : i64) : i64
    %5 = llvm.mlir.constant(0 : i64) : i64
    %6 = llvm.mlir.constant(-3 : i32) : i32
    %7 = "llvm.intr.threadlocal.address"(%0) : (!llvm.ptr) -> !llvm.ptr
    %8 = llvm.load %7 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %9 = llvm.icmp "eq" %8, %1 : !llvm.ptr
    llvm.cond_br %9, ^bb5(%1 : !llvm.ptr), ^bb1
  ^bb1:  // pred: ^bb0
    %10 = llvm.getelementptr inbounds|nuw %8[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %11 = llvm.load %10 {alignment = 8 : i64} : !llvm.ptr -> i32
    %12 = llvm.icmp "eq" %11, %3 : i32
    llvm.cond_br %12, ^bb2, ^bb5(%1 : !llvm.ptr)
  ^bb2:  // pred: ^bb1
    %13 = llvm.load %8 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %14 = llvm.getelementptr inbounds|nuw %13[%4] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %15 = llvm.load %14 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %16 = llvm.load %13 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %17 = llvm.call tail %15(%16, %arg0) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.noundef}, i64 {llvm.noundef}) -> i64
    %18 = llvm.icmp "eq" %17, %5 : i64
    llvm.cond_br %18, ^bb3, ^bb4
  ^bb3:  // pred: ^bb2
    llvm.store %6, %10 {alignment = 8 : i64} : i32, !llvm.ptr
    llvm.br ^bb4
  ^bb4:  // 2 preds: ^bb2, ^bb3
    %19 = llvm.inttoptr %17 : i64 to !llvm.ptr
    llvm.br ^bb5(%19 : !llvm.ptr)
  ^bb5(%20: !llvm.ptr):  // 3 preds: ^bb0, ^bb1, ^bb4
    llvm.return %20 : !llvm.ptr
  }
  llvm.func hidden local_unnamed_addr @_mlir_memref_to_llvm_aligned_alloc(%arg0: i64 {llvm.noundef}, %arg1: i64 {llvm.noundef}) -> !llvm.ptr attributes {dso_local, no_unwind, passthrough = [["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]]} {
    %0 = llvm.mlir.addressof @gpu_current : !llvm.ptr
    %1 = llvm.mlir.zero : !llvm.ptr
    %2 = llvm.mlir.constant(8 : i64) : i64
    %3 = llvm.mlir.constant(0 : i32) : i32
    %4 = llvm.mlir.constant(16 : i64) : i64
    %5 = llvm.mlir.constant(0 : i64) : i64
    %6 = llvm.mlir.constant(-3 : i32) : i32
    %7 = "llvm.intr.threadlocal.address"(%0) : (!llvm.ptr) -> !llvm.ptr
    %8 = llvm.load %7 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %9 = llvm.icmp "eq" %8, %1 : !llvm.ptr
    llvm.cond_br %9, ^bb5(%1 : !llvm.ptr), ^bb1
  ^bb1:  // pred: ^bb0
    %10 = llvm.getelementptr inbounds|nuw %8[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %11 = llvm.load %10 {alignment = 8 : i64} : !llvm.ptr -> i32
    %12 = llvm.icmp "eq" %11, %3 : i32
    llvm.cond_br %12, ^bb2, ^bb5(%1 : !llvm.ptr)
  ^bb2:  // pred: ^bb1
    %13 = llvm.load %8 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %14 = llvm.getelementptr inbounds|nuw %13[%4] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %15 = llvm.load %14 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %16 = llvm.load %13 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %17 = llvm.call tail %15(%16, %arg1) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.noundef}, i64 {llvm.noundef}) -> i64
    %18 = llvm.icmp "eq" %17, %5 : i64
    llvm.cond_br %18, ^bb3, ^bb4
  ^bb3:  // pred: ^bb2
    llvm.store %6, %10 {alignment = 8 : i64} : i32, !llvm.ptr
    llvm.br ^bb4
  ^bb4:  // 2 preds: ^bb2, ^bb3
    %19 = llvm.inttoptr %17 : i64 to !llvm.ptr
    llvm.br ^bb5(%19 : !llvm.ptr)
  ^bb5(%20: !llvm.ptr):  // 3 preds: ^bb0, ^bb1, ^bb4
    llvm.return %20 : !llvm.ptr
  }
  llvm.func hidden local_unnamed_addr @_mlir_memref_to_llvm_free(%arg0: !llvm.ptr {llvm.noundef}) attributes {dso_local, no_unwind, passthrough = [["min-legal-vector-width", "0"], ["no-trapping-math", "true"], ["stack-protector-buffer-size", "8"]]} {
    %0 = llvm.mlir.addressof @gpu_current : !llvm.ptr
    %1 = llvm.mlir.zero : !llvm.ptr
    %2 = llvm.mlir.constant(24 : i64) : i64
    %3 = "llvm.intr.threadlocal.address"(%0) : (!llvm.ptr) -> !llvm.ptr
    %4 = llvm.load %3 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %5 = llvm.icmp "eq" %4, %1 : !llvm.ptr
    %6 = llvm.icmp "eq" %arg0, %1 : !llvm.ptr
    %7 = llvm.or %6, %5 : i1
    llvm.cond_br %7, ^bb2, ^bb1
  ^bb1:  // pred: ^bb0
    %8 = llvm.load %4 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %9 = llvm.getelementptr inbounds|nuw %8[%2] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %10 = llvm.load %9 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %11 = llvm.load %8 {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
    %12 = llvm.ptrtoint %arg0 : !llvm.ptr to i64
    llvm.call tail %10(%11, %12) {no_unwind} : !llvm.ptr, (!llvm.ptr {llvm.noundef}, i64 {llvm.noundef}) -> ()
    llvm.br ^bb2
  ^bb2:  // 2 preds: ^bb0, ^bb1
    llvm.return
  }
