// What LLVM knows about CPUs and features that its C API does not expose:
// the CPU names a target accepts and the features a CPU name implies.
// Built by kiln-codegen's build.rs against the same LLVM 22 headers the
// crate links; used only through targets/llvm_cpu.rs.
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/Target/TargetMachine.h>

#include <string>

namespace {
const llvm::MCSubtargetInfo* subtarget(LLVMTargetMachineRef tm) {
  return reinterpret_cast<llvm::TargetMachine*>(tm)->getMCSubtargetInfo();
}
}  // namespace

extern "C" {

// 1 when `cpu` is a processor name of the machine's target, else 0.
int kiln_llvm_cpu_is_valid(LLVMTargetMachineRef tm, const char* cpu) {
  return subtarget(tm)->isCPUStringValid(cpu) ? 1 : 0;
}

// The processor names of the machine's target, one per line (LLVMDisposeMessage).
char* kiln_llvm_cpu_names(LLVMTargetMachineRef tm) {
  std::string out;
  for (const auto& kv : subtarget(tm)->getAllProcessorDescriptions()) {
    out += kv.Key;
    out += '\n';
  }
  return LLVMCreateMessage(out.c_str());
}

// The features enabled for the machine's CPU and feature string, implied
// ones included, comma-separated (LLVMDisposeMessage).
char* kiln_llvm_enabled_features(LLVMTargetMachineRef tm) {
  std::string out;
  for (const auto& kv : subtarget(tm)->getEnabledProcessorFeatures()) {
    if (!out.empty()) out += ',';
    out += kv.Key;
  }
  return LLVMCreateMessage(out.c_str());
}
}
